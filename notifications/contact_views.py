"""Pages about customers' contacts: the public confirmation page, and the readiness pages for
incident managers.

``/contacts/confirm/<token>/`` needs no login: the signed link is the authority, and it reaches
only its own customer's administrative contacts. It is throttled per link and per client
address before the token is even read (``notifications.throttle``: 429), answers 404 for a link
that is altered, expired or used (nothing changes), protects its forms with CSRF, escapes
everything it shows, says nothing about other customers or any incident, is never cached and
sends no Referer to other sites (the token is in the URL). It is shown in the recipient's language.

``/contacts/readiness/`` and ``/contacts/customers/<id>/`` need
``incidents.view_contact_readiness`` (incident managers, auditors; others get 404); sending a
confirmation request from a customer's page also needs ``incidents.change_contact`` (403).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q, QuerySet
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from incidents.models import Contact, Customer
from incidents.readiness import customers_unconfirmed, customers_unreachable, readiness_figures
from notifications import confirmations
from notifications.contact_forms import ConfirmForm, ContactAddForm, ContactCorrectForm, ContactDeactivateForm
from notifications.models import ContactConfirmationRequest, OutgoingEmail
from notifications.rendering import choose_language
from notifications.throttle import client_address, throttle_exceeded

READINESS_PERMISSION = "incidents.view_contact_readiness"
SEND_PERMISSION = "incidents.change_contact"
#: Customers per list on the readiness page (keyset-paginated by name).
READINESS_PAGE_SIZE = 100


# --- The public confirmation page ---------------------------------------------------------


def _private(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: no Referer may carry it to another site (same-origin: our own form
    # posts still carry Origin, which CSRF checks; no-referrer would make it "null"), no index
    # may keep it.
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _throttled(request: HttpRequest, token: str) -> bool:
    by_address = throttle_exceeded(
        "contact-confirmation-address",
        client_address(request),
        limit=settings.CONTACT_CONFIRMATION_REQUESTS_PER_ADDRESS,
    )
    by_token = throttle_exceeded(
        "contact-confirmation-token", token, limit=settings.CONTACT_CONFIRMATION_REQUESTS_PER_TOKEN
    )
    return by_address or by_token


def _confirmation_context(
    link: ContactConfirmationRequest, bound: dict[str, Form] | None = None, correct_for: int | None = None
) -> dict[str, Any]:
    contacts = list(
        Contact.objects.administrative().filter(customer_id=link.customer_id).order_by("name", "id")
    )
    bound = bound or {}
    rows = []
    for contact in contacts:
        form = bound.get("correct") if correct_for == contact.pk else None
        language = choose_language(contact, link.customer)
        rows.append(
            {
                "contact": contact,
                "language_name": dict(settings.LANGUAGES).get(language, language),
                "is_recipient": contact.pk == link.recipient_id,
                "correct_form": form
                or ContactCorrectForm(
                    prefix=f"correct-{contact.pk}",
                    initial={
                        "contact": contact.pk,
                        "name": contact.name,
                        "language": language,
                    },
                ),
                "deactivate_form": ContactDeactivateForm(
                    prefix=f"deactivate-{contact.pk}", initial={"contact": contact.pk}
                ),
            }
        )
    return {
        "link": link,
        "customer_name": link.customer.name,
        "recipient": link.recipient,
        "is_periodic": link.purpose == ContactConfirmationRequest.Purpose.PERIODIC,
        "rows": rows,
        "add_form": bound.get("add")
        or ContactAddForm(prefix="add", initial={"language": translation.get_language()}),
        "confirm_form": ConfirmForm(prefix="confirm"),
    }


def _thank_you() -> HttpResponse:
    """The redirect to the thank-you page, in the language the link's page was shown in (the
    link no longer works, so that page cannot look it up)."""
    return redirect(f"{reverse('contacts:confirmed')}?language={translation.get_language()}")


def _handle_post(request: HttpRequest, link: ContactConfirmationRequest, token: str) -> HttpResponse:
    """One action of the confirmation page; a redirect on success, the page with errors (400)
    otherwise. ``LinkNotValid`` propagates (404)."""
    action = request.POST.get("action", "")
    address = client_address(request)
    here = reverse("contacts:confirm", args=[token])
    if action == "confirm":
        confirmations.confirmation_confirm(link=link, client_address=address)
        return _thank_you()
    contact_id = request.POST.get("contact", "")
    if action == "deactivate":
        form: Form = ContactDeactivateForm(request.POST, prefix=f"deactivate-{contact_id}")
        if form.is_valid():
            try:
                contact = confirmations.confirmation_contact_deactivate(
                    link=link, contact_id=form.cleaned_data["contact"], client_address=address
                )
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
                return _render_confirmation(request, link, status=400)
            if contact.pk == link.recipient_id:
                return _thank_you()
            messages.success(
                request, _("%(name)s will no longer receive our notices.") % {"name": contact.name}
            )
            return redirect(here)
    elif action == "correct":
        form = ContactCorrectForm(request.POST, prefix=f"correct-{contact_id}")
        if form.is_valid():
            contact = confirmations.confirmation_contact_correct(
                link=link,
                contact_id=form.cleaned_data["contact"],
                name=form.cleaned_data["name"],
                language=form.cleaned_data["language"],
                client_address=address,
            )
            messages.success(request, _("%(name)s is corrected.") % {"name": contact.name})
            return redirect(here)
        if contact_id.isdigit():
            return _render_confirmation(
                request, link, bound={"correct": form}, correct_for=int(contact_id), status=400
            )
    elif action == "add":
        form = ContactAddForm(request.POST, prefix="add")
        if form.is_valid():
            try:
                contact = confirmations.confirmation_contact_add(
                    link=link, client_address=address, **form.cleaned_data
                )
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(
                    request,
                    _("We sent %(email)s a link: %(name)s counts as a contact once the address is confirmed.")
                    % {"email": contact.email, "name": contact.name},
                )
                return redirect(here)
        return _render_confirmation(request, link, bound={"add": form}, status=400)
    messages.error(request, _("That did not work; please try again."))
    return _render_confirmation(request, link, status=400)


def _render_confirmation(
    request: HttpRequest,
    link: ContactConfirmationRequest,
    *,
    bound: dict[str, Form] | None = None,
    correct_for: int | None = None,
    status: int = 200,
) -> HttpResponse:
    context = _confirmation_context(link, bound, correct_for)
    return render(request, "contacts/confirm.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def contact_confirmation(request: HttpRequest, token: str) -> HttpResponse:
    """The page a confirmation link opens: the customer's administrative contacts, with forms
    to confirm them, correct a name or language, deactivate one or add one (a ``new_address``
    link: confirm or decline the recipient's own address). 429 when throttled, 404 for a link
    that does not work (see ``confirmations.confirmation_link_for_token``), 400 with the form's
    errors for bad input; success redirects (to the same link, or to the thank-you page once
    the link is used up)."""
    if _throttled(request, token):
        throttled = render(request, "contacts/throttled.html", status=429)
        throttled["Retry-After"] = "3600"
        return _private(throttled)
    try:
        link = confirmations.confirmation_link_for_token(token)
    except confirmations.LinkNotValid:
        raise Http404("No such link.") from None
    with translation.override(choose_language(link.recipient, link.customer)):
        try:
            response: HttpResponse | None = (
                _handle_post(request, link, token) if request.method == "POST" else None
            )
        except confirmations.LinkNotValid:
            raise Http404("No such link.") from None
        if response is None:
            response = _render_confirmation(request, link)
        return _private(response)


@never_cache
@require_safe
def contact_confirmation_done(request: HttpRequest) -> HttpResponse:
    """The thank-you page after a link was used up (it names nobody), in ``?language=`` when
    that is one of ``settings.LANGUAGES`` (else English)."""
    language = request.GET.get("language", "")
    if language not in dict(settings.LANGUAGES):
        language = "en"
    with translation.override(language):
        return _private(render(request, "contacts/confirmed.html"))


# --- Readiness (incident managers) --------------------------------------------------------


def _require_readiness(request: HttpRequest) -> None:
    if not request.user.has_perm(READINESS_PERMISSION):
        raise Http404("No such page.")


def _encode_cursor(customer: Customer) -> str:
    raw = json.dumps([customer.name, customer.pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        name, pk = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        if not isinstance(name, str) or type(pk) is not int:
            raise ValueError("bad cursor")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValueError("bad cursor") from None
    return name, pk


def _page(customers: QuerySet[Customer], cursor: str | None) -> tuple[list[Customer], str | None]:
    """One page of ``customers`` by name after ``cursor``; returns it and the next cursor."""
    customers = customers.order_by("name", "id")
    if cursor:
        name, pk = _decode_cursor(cursor)
        customers = customers.filter(Q(name__gt=name) | Q(name=name, pk__gt=pk))
    rows = list(customers[: READINESS_PAGE_SIZE + 1])
    more = len(rows) > READINESS_PAGE_SIZE
    rows = rows[:READINESS_PAGE_SIZE]
    return rows, (_encode_cursor(rows[-1]) if more and rows else None)


def _refused_page(cursor: str | None) -> tuple[list[Contact], str | None]:
    """One page of the active administrative contacts refused for good, newest refusal first
    (keyset on ``(undeliverable_at, id)``); returns it and the next cursor."""
    contacts = (
        Contact.objects.administrative()
        .filter(undeliverable_at__isnull=False)
        .select_related("customer")
        .order_by("-undeliverable_at", "-id")
    )
    if cursor:
        try:
            raw = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
            at, pk = datetime.fromisoformat(raw[0]), raw[1]
            if timezone.is_naive(at) or type(pk) is not int:
                raise ValueError("bad cursor")
        except (binascii.Error, ValueError, TypeError, IndexError, UnicodeDecodeError):
            raise ValueError("bad cursor") from None
        contacts = contacts.filter(Q(undeliverable_at__lt=at) | Q(undeliverable_at=at, pk__lt=pk))
    rows = list(contacts[: READINESS_PAGE_SIZE + 1])
    more = len(rows) > READINESS_PAGE_SIZE
    rows = rows[:READINESS_PAGE_SIZE]
    if not (more and rows):
        return rows, None
    last = rows[-1]
    raw = json.dumps([last.undeliverable_at.isoformat(), last.pk]).encode()
    return rows, base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _with_contact_counts(customers: QuerySet[Customer]) -> QuerySet[Customer]:
    administrative = Q(contacts__is_active=True, contacts__role=Contact.Role.ADMINISTRATIVE)
    return customers.annotate(
        administrative_count=Count("contacts", filter=administrative),
        undeliverable_count=Count(
            "contacts", filter=administrative & Q(contacts__undeliverable_at__isnull=False)
        ),
        pending_count=Count("contacts", filter=administrative & Q(contacts__pending_confirmation=True)),
    )


@login_required
@require_safe
def readiness(request: HttpRequest) -> HttpResponse:
    """Who could not be reached if a breach were declared today: the counts
    (``incidents.readiness.readiness_figures``), the customers with no deliverable
    administrative contact and those unconfirmed (each list by name), and the addresses refused
    by their mail server (newest first), ``READINESS_PAGE_SIZE`` per page
    (``?unreachable=<cursor>``, ``?unconfirmed=<cursor>``, ``?refused=<cursor>``). 404 without
    ``incidents.view_contact_readiness``; 400 for a bad cursor."""
    _require_readiness(request)
    try:
        unreachable, unreachable_next = _page(
            _with_contact_counts(customers_unreachable()), request.GET.get("unreachable")
        )
        unconfirmed, unconfirmed_next = _page(
            _with_contact_counts(customers_unconfirmed()), request.GET.get("unconfirmed")
        )
        refused, refused_next = _refused_page(request.GET.get("refused"))
    except ValueError:
        return render(request, "contacts/readiness.html", {"bad_cursor": True}, status=400)
    return render(
        request,
        "contacts/readiness.html",
        {
            "figures": readiness_figures(),
            "unreachable": unreachable,
            "unreachable_next": unreachable_next,
            "unconfirmed": unconfirmed,
            "unconfirmed_next": unconfirmed_next,
            "refused": refused,
            "refused_next": refused_next,
            "period_days": settings.CONTACT_CONFIRMATION_DAYS,
            "link_days": settings.CONTACT_CONFIRMATION_LINK_DAYS,
        },
    )


@login_required
@require_safe
def customer_readiness(request: HttpRequest, pk: int) -> HttpResponse:
    """One customer's readiness entry: its contacts and whether email reaches them, its
    confirmation requests with their emails' status, and its audit chain. 404 without
    ``incidents.view_contact_readiness``."""
    _require_readiness(request)
    return _customer_readiness_page(request, pk)


def _customer_readiness_page(request: HttpRequest, pk: int, *, status: int = 200) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=pk)
    contacts = list(customer.contacts.order_by("-is_active", "role", "name", "id"))
    requests = list(
        ContactConfirmationRequest.objects.filter(customer=customer)
        .select_related("recipient", "email", "requested_by")
        .order_by("-created_at", "-id")[:50]
    )
    return render(
        request,
        "contacts/customer_readiness.html",
        {
            "customer": customer,
            "contacts": contacts,
            "has_deliverable": any(contact.is_deliverable for contact in contacts),
            "requests": requests,
            "emails_failed": OutgoingEmail.objects.filter(
                customer=customer, status=OutgoingEmail.Status.FAILED
            ).count(),
            "audit_events": list(customer.audit_events.order_by("-sequence")[:100]),
            "can_send": request.user.has_perm(SEND_PERMISSION),
        },
        status=status,
    )


@login_required
@require_POST
def customer_confirmation_send(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask the customer's deliverable contacts to confirm now
    (``confirmations.contacts_confirmation_request``). 404 without
    ``incidents.view_contact_readiness``, 403 without ``incidents.change_contact``; a customer
    with no deliverable contact gets a message (409)."""
    _require_readiness(request)
    if not request.user.has_perm(SEND_PERMISSION):
        raise PermissionDenied(f"Your role may not do this (needs {SEND_PERMISSION}).")
    customer = get_object_or_404(Customer, pk=pk)
    links = confirmations.contacts_confirmation_request(customer=customer, actor=request.user)
    if not links:
        messages.error(request, "Nobody to ask: the customer has no deliverable administrative contact.")
        return _customer_readiness_page(request, pk, status=409)
    messages.success(request, f"Confirmation requests queued for {len(links)} contact(s).")
    return redirect("contacts:customer_readiness", pk=customer.pk)
