"""Every route of the URLconf, with real objects to fill its URL, and a client per role: the
machinery behind ``tests/test_route_matrix.py`` and ``tests/test_content_security_policy.py``.

``all_routes()`` walks ``get_resolver()`` and yields one ``Route`` per URL pattern: its key in
``tests.route_permissions.ROUTES`` (``namespace:name``, or the full pattern for an unnamed one),
the full pattern, its view, and the URL kwarg names. ``build_world()`` makes the objects the URLs
name, through the real services. ``url_for(route, world)`` builds a concrete URL: each kwarg takes
the object the table's entry names (``kwargs=``) or, by default, the one ``DEFAULT_KWARGS`` names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone

from tests.route_permissions import DEFAULT_KWARGS, ROLES, MissingEntry, entry_for


@dataclass(frozen=True)
class Route:
    """One URL pattern: ``key`` (``namespace:name``, or ``pattern`` when it has no name),
    ``pattern`` (the full pattern from the root, as Django prints it), ``parts`` (each level's
    pattern object), ``callback`` (the view) and ``kwargs`` (the URL kwarg names)."""

    key: str
    pattern: str
    parts: tuple[Any, ...]
    callback: Callable[..., Any]
    kwargs: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/")


def _kwarg_names(part: Any) -> list[str]:
    if isinstance(part, RoutePattern):
        return re.findall(r"<(?:\w+:)?(\w+)>", str(part))
    return list(re.compile(str(part)).groupindex)


def all_routes() -> list[Route]:
    """Every URL pattern reachable from the root URLconf, in URLconf order."""
    found: list[Route] = []

    def walk(resolver: URLResolver, parts: tuple[Any, ...], namespaces: tuple[str, ...]) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                walk(
                    entry,
                    (*parts, entry.pattern),
                    (*namespaces, *([entry.namespace] if entry.namespace else [])),
                )
            elif isinstance(entry, URLPattern):
                full = (*parts, entry.pattern)
                pattern = "".join(str(part) for part in full)
                key = ":".join((*namespaces, entry.name)) if entry.name else pattern
                kwargs = tuple(name for part in full for name in _kwarg_names(part))
                found.append(Route(key, pattern, full, entry.callback, kwargs))

    walk(get_resolver(), (), ())
    return found


def _fill_regex(regex: str, values: dict[str, str]) -> str:
    """``regex`` (a RegexPattern) with each named group replaced by its value, anchors dropped."""
    out, index = [], 0
    while index < len(regex):
        if regex.startswith("(?P<", index):
            name = regex[index + 4 : regex.index(">", index)]
            depth, end = 0, index
            while True:
                if regex[end] == "\\":
                    end += 2
                    continue
                depth += {"(": 1, ")": -1}.get(regex[end], 0)
                end += 1
                if depth == 0:
                    break
            out.append(values[name])
            index = end
            continue
        char = regex[index]
        if char == "\\":
            out.append(regex[index + 1])
            index += 2
            continue
        if char not in "^$":
            out.append(char)
        index += 1
    return "".join(out)


def url_for(route: Route, world: World) -> str:
    """A concrete URL for ``route``, its kwargs filled from ``world`` (``AssertionError`` naming
    the route when a kwarg has no object, or when the URL does not resolve back to it)."""
    try:
        overrides = entry_for(route.key).kwargs
    except MissingEntry:
        overrides = {}  # tests/test_route_matrix.py names the route
    objects = {**DEFAULT_KWARGS, **overrides}
    values = {}
    for name in route.kwargs:
        assert name in objects, (
            f"Route {route.key!r} has URL kwarg {name!r} that tests/route_permissions.py does not fill: "
            f"add kwargs={{{name!r}: '<object>'}} to its entry (objects: {', '.join(sorted(world.objects))})."
        )
        values[name] = world.value(objects[name], route)
    url = "/"
    for part in route.parts:
        if isinstance(part, RegexPattern):
            url += _fill_regex(str(part), values)
        else:
            url += re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], str(part))
    match = resolve(url.split("?")[0])
    assert match.func is route.callback or match.route == route.pattern, (route.key, url, match.route)
    return url


class World:
    """The objects the URLs name, built through the real services (``build_world``).

    ``objects`` maps each name the table may use in ``kwargs=`` to a value or to a function of
    the route (``admin_object``: the first row of the admin's model)."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects

    def value(self, name: str, route: Route) -> str:
        found = self.objects[name]
        return str(found(route) if callable(found) else found)


def _admin_object(route: Route) -> Any:
    """The primary key of the first row of the model of ``route``'s admin (``get_urls`` sets
    ``model_admin`` on each view), or of an incident for admin routes that belong to no model."""
    from incidents.models import Incident

    model_admin = getattr(route.callback, "model_admin", None)
    model = model_admin.model if model_admin is not None else Incident
    first = model._default_manager.order_by("pk").first()
    return first.pk if first is not None else 999_999


def build_world(
    make_incident: Callable[..., Any], personas: dict[str, Any], superuser: Any, settings: Any, tmp_path: Any
) -> World:
    """Every object a URL of the URLconf names, through the real services (``settings`` and
    ``tmp_path``: pytest-django's and pytest's fixtures; evidence files are stored under
    ``tmp_path``):

    - ``incident``: declared (an open clock per affected customer, a draft notice, an active
      withholding, a response task, a note), with affected customer ``FIXTURE-001``;
    - ``post_mortem_incident``: in post-mortem, a draft post-mortem and an open action item;
    - ``drill_incident``: a drill with its record; ``customer`` with a ``contact``;
    - ``confirmation_token``: a contact confirmation link's token; an API token of the manager;
    - ``evidence_file``: a PDF on ``incident``; ``webhook_subscriber`` (of ``incident.declared``,
      at http://127.0.0.1:9/hook) with ``webhook_delivery``, the declaration's, failed;
    - ``totp_device``: a confirmed TOTP device of a user in no group;
    - a row of every other model (``tests.conftest.second_half_rows`` and ``intake_rows``), so
      each admin has an object to show.
    """
    from django.contrib.contenttypes.models import ContentType
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import override_settings

    from incidents import files, services, webhooks
    from incidents.api.authentication import api_token_create
    from incidents.models import Contact, Customer, Incident, WebhookDelivery, WebhookEventType
    from notifications import confirmations
    from notifications import services as notification_services
    from notifications.models import Clock
    from postmortems import services as postmortem_services
    from tests.conftest import intake_rows, second_half_rows
    from triage.models import ResponseTask
    from triage.services import assessment_record

    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "evidence")},
        },
    }
    manager, responder = personas["incident_manager"], personas["responder"]
    # Before the declaration, so that it makes the subscriber a delivery (the receiver: nobody).
    with override_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True):
        subscriber, _secret = webhooks.webhook_subscriber_create(
            actor=manager,
            name="Route matrix receiver",
            url="http://127.0.0.1:9/hook",
            event_types=[WebhookEventType.INCIDENT_DECLARED],
        )
    second_half_rows(make_incident, manager)
    intake_rows(manager)

    incident = make_incident(state="detected", title="Route matrix incident")
    assessment_record(
        incident=incident,
        actor=responder,
        scope="in_scope",
        scope_rationale="Customer personal data reached someone not entitled to it.",
        malicious="no",
        scenario="misdirected_communication",
        data_categories=["identity"],
        severity_inputs={"ease_of_identification": "maximum"},
        notification_facts={"breach_types": ["confidentiality"]},
    )
    incident.refresh_from_db()
    affected = Customer.objects.get(account_reference="FIXTURE-001")
    services.affected_customer_add(incident=incident, customer=affected, actor=responder)
    incident = services.incident_declare(
        incident=incident, actor=manager, nature_of_breach="Payroll file emailed to a wrong recipient."
    )
    notice = notification_services.notice_draft(incident=incident, actor=manager, kind="initial")
    withholding = notification_services.withholding_create(
        incident=incident,
        actor=manager,
        field="sub_processor",
        reason="law_enforcement",
        requested_by="Police liaison",
        review_at=timezone.now() + timedelta(days=7),
    )
    services.note_add(incident=incident, actor=responder, text="Checked the mail gateway logs.")
    evidence = files.evidence_file_upload(
        incident=incident,
        actor=responder,
        upload=SimpleUploadedFile("gateway-log.pdf", b"%PDF-1.7\nMail gateway log extract.\n"),
        description="Mail gateway log",
    )
    # The sender runs after commit (never, in a test's transaction): the delivery stands failed.
    webhook_delivery = WebhookDelivery.objects.filter(subscriber=subscriber).order_by("pk").first()
    assert webhook_delivery is not None, "declaring the incident made the subscriber no delivery"
    WebhookDelivery.objects.filter(pk=webhook_delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, attempts=1, last_error="Connection refused"
    )
    task = ResponseTask.objects.filter(incident=incident).order_by("pk").first()
    assert task is not None, "the playbook of misdirected_communication made no response task"

    post_mortem_incident = make_incident(state="post_mortem", title="Route matrix post-mortem")
    postmortem_services.post_mortem_update(
        incident=post_mortem_incident, actor=manager, changes={"root_cause": "No recipient check."}
    )
    action_item = postmortem_services.action_item_create(
        incident=post_mortem_incident, actor=manager, description="Add recipient checks", owner=manager
    )
    drill_incident = Incident.objects.filter(is_drill=True).order_by("pk").first()
    assert drill_incident is not None

    from incidents.models import Product, Supplier, WorkerHeartbeat

    Product.objects.create(name="Payroll export")
    Supplier.objects.create(name="Mail relay provider")
    WorkerHeartbeat.objects.get_or_create(name="worker", defaults={"beat_at": timezone.now()})
    customer = Customer.objects.get(account_reference="FIXTURE-001")
    contact = Contact.objects.filter(customer=customer).order_by("pk").first()
    assert contact is not None
    links = confirmations.contacts_confirmation_request(customer=customer, actor=None)
    token, _key = api_token_create(user=manager, name="route matrix", lifetime=timedelta(days=1))
    clock = Clock.objects.filter(incident=incident).order_by("pk").first()
    from incidents.models import ReadLogEntry
    from notifications.models import Delivery

    # Deliveries are made by the worker after an approval; one failed row stands for them here.
    delivery = Delivery.objects.create(
        notice=notice,
        contact=contact,
        customer=customer,
        address=contact.email,
        language="en",
        subject="Personal data breach notice",
        message_id="<route-matrix@breachdesk.test>",
        status=Delivery.Status.FAILED,
        last_error="550 mailbox unavailable",
    )
    from django_otp.plugins.otp_totp.models import TOTPDevice

    User = get_user_model()
    # Someone's enrolled authenticator app (django-otp's admin shows its key). Not a persona's:
    # an enrolled user's unverified session may not enrol another key (WebAuthn answers 403).
    totp_owner = User.objects.create_user(username="totp.owner", email="totp.owner@breachdesk.test")
    totp_device = TOTPDevice.objects.create(user=totp_owner, name="Authenticator app", confirmed=True)
    return World(
        {
            "incident": incident.pk,
            "post_mortem_incident": post_mortem_incident.pk,
            "drill_incident": drill_incident.pk,
            "clock": clock.pk if clock else 999_999,
            "notice_number": notice.number,
            "withholding": withholding.pk,
            "affected_customer": affected.pk,
            "customer": customer.pk,
            "contact": contact.pk,
            "task": task.pk,
            "action_item": action_item.pk,
            "confirmation_token": confirmations.confirmation_token(links[0]) if links else "not-a-token",
            "api_token": token.pk,
            "delivery": delivery.pk,
            "evidence_file": evidence.pk,
            "webhook_subscriber": subscriber.pk,
            "webhook_delivery": webhook_delivery.pk,
            "totp_device": totp_device.pk,
            "read_log_entry": ReadLogEntry.objects.order_by("pk").values_list("pk", flat=True).first() or 1,
            "transition": "close",
            "user": User.objects.order_by("pk").values_list("pk", flat=True).first(),
            "admin_object": _admin_object,
            "admin_app_label": "incidents",
            "incident_content_type": ContentType.objects.get_for_model(Incident).pk,
            "nothing": "no-such-page/",
        }
    )


def client_for(role: str, personas: dict[str, Any], superuser: Any) -> Client:
    """A test client logged in as ``role`` (one of ``ROLES``; ``anonymous``: not logged in)
    that answers server errors with their status instead of raising them."""
    assert role in ROLES, role
    client = Client(raise_request_exception=False)
    if role == "superuser":
        client.force_login(superuser)
    elif role != "anonymous":
        client.force_login(personas[role])
    return client


def routes_in_order() -> Iterator[Route]:
    """``all_routes()`` without the duplicates a pattern may have (the same key twice)."""
    seen: set[str] = set()
    for route in all_routes():
        if route.key not in seen:
            seen.add(route.key)
            yield route
