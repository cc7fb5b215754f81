"""The webhook subscribers' pages under ``/webhooks/`` (README "Webhooks").

Every page needs a login and a permission, checked in each view: the list and a subscriber's
page (with its delivery log) need ``incidents.view_webhooksubscriber`` (incident managers and
auditors; others get 403 for the list and 404 for a subscriber); the delivery log also needs
``incidents.view_webhookdelivery``. Creating needs ``incidents.add_webhooksubscriber``;
editing, deactivating and rotating the secret ``incidents.change_webhooksubscriber``; sending a
failed delivery again ``incidents.redeliver_webhookdelivery`` (403 otherwise). Views validate
with ``WebhookSubscriberForm`` and call one service of ``incidents.webhooks``; its
``ValidationError`` re-shows the form (400), ``LifecycleConflict`` a message (409).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from incidents.exceptions import LifecycleConflict
from incidents.models import WebhookDelivery, WebhookEventType, WebhookSubscriber
from incidents.webhooks import (
    subscriber_log,
    webhook_delivery_redeliver,
    webhook_subscriber_create,
    webhook_subscriber_rotate_secret,
    webhook_subscriber_update,
)

#: Deliveries shown on a subscriber's page (the API pages through all of them).
LOG_SIZE = 100


class WebhookSubscriberForm(forms.Form):
    """A subscriber's name, URL, event types and whether it is active."""

    name = forms.CharField(max_length=100)
    url = forms.CharField(label="URL", max_length=2000, help_text="https://, resolving to a public address.")
    event_types = forms.MultipleChoiceField(
        choices=WebhookEventType.choices, widget=forms.CheckboxSelectMultiple, label="Events"
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")


class RotateSecretForm(forms.Form):
    grace_hours = forms.IntegerField(
        min_value=0,
        max_value=168,
        initial=24,
        label="Previous secret keeps signing for (hours)",
    )


def _require(request: HttpRequest, permission: str, message: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(message)


def _subscriber_for_user(request: HttpRequest, pk: int) -> WebhookSubscriber:
    if not request.user.has_perm("incidents.view_webhooksubscriber"):
        raise Http404("No such subscriber.")
    return get_object_or_404(WebhookSubscriber, pk=pk)


def _add_errors(form: forms.Form, error: ValidationError) -> None:
    for field, errors in error.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@login_required
@require_safe
def subscriber_list(request: HttpRequest) -> HttpResponse:
    """The subscribers (``incidents.view_webhooksubscriber``; 403 without)."""
    _require(request, "incidents.view_webhooksubscriber", "Your role may not see the webhook subscribers.")
    subscribers = WebhookSubscriber.objects.order_by("name")
    return render(request, "webhooks/subscriber_list.html", {"subscribers": subscribers})


@login_required
def subscriber_new(request: HttpRequest) -> HttpResponse:
    """Register a subscriber (``incidents.add_webhooksubscriber``; 403 without); on success the
    page shows its secret, this once."""
    _require(request, "incidents.add_webhooksubscriber", "Your role may not register webhook subscribers.")
    form = WebhookSubscriberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            subscriber, secret = webhook_subscriber_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            return render(request, "webhooks/secret.html", {"subscriber": subscriber, "secret": secret})
    status = 400 if request.method == "POST" else 200
    return render(request, "webhooks/subscriber_form.html", {"form": form}, status=status)


def _render_detail(
    request: HttpRequest, subscriber: WebhookSubscriber, status: int = 200, **extra: Any
) -> HttpResponse:
    deliveries = (
        list(subscriber_log(subscriber)[:LOG_SIZE])
        if request.user.has_perm("incidents.view_webhookdelivery")
        else None
    )
    context = {
        "subscriber": subscriber,
        "deliveries": deliveries,
        "form": extra.pop(
            "form",
            WebhookSubscriberForm(
                initial={
                    "name": subscriber.name,
                    "url": subscriber.url,
                    "event_types": subscriber.event_types,
                    "is_active": subscriber.is_active,
                }
            ),
        ),
        "rotate_form": extra.pop("rotate_form", RotateSecretForm()),
        **extra,
    }
    return render(request, "webhooks/subscriber_detail.html", context, status=status)


@login_required
def subscriber_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A subscriber with its delivery log; the edit form for those who may change it. POST
    saves the form (``incidents.change_webhooksubscriber``; 403 without)."""
    subscriber = _subscriber_for_user(request, pk)
    if request.method != "POST":
        return _render_detail(request, subscriber)
    _require(request, "incidents.change_webhooksubscriber", "Your role may not change webhook subscribers.")
    form = WebhookSubscriberForm(request.POST)
    if form.is_valid():
        try:
            webhook_subscriber_update(actor=request.user, subscriber=subscriber, changes=form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Subscriber saved.")
            return redirect("webhooks:subscriber_detail", pk=pk)
    return _render_detail(request, subscriber, status=400, form=form)


@login_required
@require_POST
def subscriber_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    """Deactivate a subscriber (``incidents.change_webhooksubscriber``; 403 without)."""
    subscriber = _subscriber_for_user(request, pk)
    _require(request, "incidents.change_webhooksubscriber", "Your role may not change webhook subscribers.")
    webhook_subscriber_update(actor=request.user, subscriber=subscriber, changes={"is_active": False})
    messages.success(request, "Subscriber deactivated: it gets no new events.")
    return redirect("webhooks:subscriber_detail", pk=pk)


@login_required
@require_POST
def subscriber_rotate_secret(request: HttpRequest, pk: int) -> HttpResponse:
    """Give the subscriber a new secret and show it this once
    (``incidents.change_webhooksubscriber``; 403 without)."""
    subscriber = _subscriber_for_user(request, pk)
    _require(request, "incidents.change_webhooksubscriber", "Your role may not change webhook subscribers.")
    form = RotateSecretForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, subscriber, status=400, rotate_form=form)
    secret = webhook_subscriber_rotate_secret(
        actor=request.user, subscriber=subscriber, grace=timedelta(hours=form.cleaned_data["grace_hours"])
    )
    return render(
        request, "webhooks/secret.html", {"subscriber": subscriber, "secret": secret, "rotated": True}
    )


@login_required
@require_POST
def delivery_redeliver(request: HttpRequest, pk: int, delivery_pk: int) -> HttpResponse:
    """Send a failed delivery again (``incidents.redeliver_webhookdelivery``; 403 without; 409
    with a message when it has not failed or the subscriber is inactive)."""
    subscriber = _subscriber_for_user(request, pk)
    _require(
        request, "incidents.redeliver_webhookdelivery", "Your role may not send webhook deliveries again."
    )
    delivery = get_object_or_404(WebhookDelivery, pk=delivery_pk, subscriber=subscriber)
    try:
        webhook_delivery_redeliver(actor=request.user, delivery=delivery)
    except LifecycleConflict as error:
        messages.error(request, str(error))
        return _render_detail(request, subscriber, status=409)
    messages.success(request, "Delivery queued again.")
    return redirect("webhooks:subscriber_detail", pk=pk)
