"""Contact confirmation: customers keep their administrative contacts correct through a signed
link, without a login (issue 11; DESIGN.md section 1: "the product makes stale contacts
visible").

Every ``CONTACT_CONFIRMATION_DAYS`` each customer's deliverable administrative contacts are
emailed a link to ``/contacts/confirm/<token>/`` (``contacts_confirmation_request``, run by
``manage.py send_contact_confirmations`` and daily by beat for the customers that are due). The
token is signed with Django's signing (salt ``CONFIRMATION_SALT``, ``SECRET_KEY``), names one
``ContactConfirmationRequest`` and its customer, and works for
``CONTACT_CONFIRMATION_LINK_DAYS``. Through it the recipient confirms the list, corrects a
name or language, deactivates a contact, or adds one; a contact added so gets a link of its own
(purpose ``new_address``) and counts once it confirms its address. Every change is audited on
the customer's chain naming the recipient. A customer whose last request's links expired with
no confirmation since is marked "unconfirmed" (``customers_mark_unconfirmed``).

Errors: ``LinkNotValid`` (altered, expired, used, or its recipient deactivated: the page answers
404 and nothing changes), ``django.core.exceptions.ValidationError`` (a value the page must show
as a form error). Every write here takes the request row's lock first, then the customer's
(through ``incidents.services``): a link used twice at once changes things once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from incidents import services as incident_services
from incidents.audit import customer_audit_append
from incidents.models import Contact, Customer
from notifications.emails import outgoing_email_queue
from notifications.models import ContactConfirmationRequest, OutgoingEmail
from notifications.rendering import choose_language

#: Salt of the confirmation tokens: a token signed for anything else never verifies here.
CONFIRMATION_SALT = "breachdesk.contacts.confirm"


class LinkNotValid(Exception):
    """The confirmation link is altered, expired, used, or its recipient was deactivated."""


def _iso(instant: datetime | None) -> str | None:
    return instant.astimezone(UTC).isoformat() if instant else None


def link_lifetime() -> timedelta:
    """How long a confirmation link works: ``CONTACT_CONFIRMATION_LINK_DAYS`` days."""
    return timedelta(days=settings.CONTACT_CONFIRMATION_LINK_DAYS)


def confirmation_token(request: ContactConfirmationRequest) -> str:
    """The signed, timestamped token of ``request`` (URL-safe; carries its id and customer)."""
    return signing.dumps({"r": request.pk, "c": request.customer_id}, salt=CONFIRMATION_SALT)


def confirmation_url(request: ContactConfirmationRequest) -> str:
    """The absolute link emailed for ``request`` (``SITE_URL`` + ``/contacts/confirm/<token>/``)."""
    path = reverse("contacts:confirm", args=[confirmation_token(request)])
    return settings.SITE_URL.rstrip("/") + path


def confirmation_link_for_token(token: str, *, now: datetime | None = None) -> ContactConfirmationRequest:
    """The open request a token names, with its customer and recipient.

    Raises ``LinkNotValid`` when the signature does not verify (altered or forged), the token
    is older than ``CONTACT_CONFIRMATION_LINK_DAYS``, the request does not exist, belongs to
    another customer, was used, expired, or its recipient is no longer an active contact.
    """
    now = now or timezone.now()
    try:
        payload = signing.loads(token, salt=CONFIRMATION_SALT, max_age=link_lifetime())
        request_id, customer_id = int(payload["r"]), int(payload["c"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise LinkNotValid("The link is altered or expired.") from None
    link = (
        ContactConfirmationRequest.objects.select_related("customer", "recipient")
        .filter(pk=request_id, customer_id=customer_id)
        .first()
    )
    if link is None or not link.is_open_at(now) or not link.recipient.is_active:
        raise LinkNotValid("The link was used or has expired.")
    return link


def _locked_open(link: ContactConfirmationRequest, now: datetime) -> ContactConfirmationRequest:
    """``link`` re-read under its row lock, still open; else ``LinkNotValid``."""
    locked = (
        ContactConfirmationRequest.objects.select_for_update()
        .select_related("customer", "recipient")
        .get(pk=link.pk)
    )
    locked.recipient.refresh_from_db()
    if not locked.is_open_at(now) or not locked.recipient.is_active:
        raise LinkNotValid("The link was used or has expired.")
    return locked


# Sending requests ----------------------------------------------------------------------------


def _request_send(
    *,
    customer: Customer,
    recipient: Contact,
    purpose: str,
    now: datetime,
    requested_by: Any | None = None,
    added_by: Contact | None = None,
) -> ContactConfirmationRequest:
    """Create one request and its email in the caller's transaction."""
    link = ContactConfirmationRequest.objects.create(
        customer=customer,
        recipient=recipient,
        purpose=purpose,
        requested_by=requested_by,
        created_at=now,
        expires_at=now + link_lifetime(),
    )
    kind = (
        OutgoingEmail.Kind.CONTACT_CONFIRMATION
        if purpose == ContactConfirmationRequest.Purpose.PERIODIC
        else OutgoingEmail.Kind.CONTACT_ADDRESS_CONFIRMATION
    )
    link.email = outgoing_email_queue(
        kind=kind,
        address=recipient.email,
        language=choose_language(recipient, customer),
        context={
            "customer_name": customer.name,
            "recipient_name": recipient.name,
            "added_by_name": added_by.name if added_by else "",
            "link": confirmation_url(link),
            "expires_at": link.expires_at.strftime("%Y-%m-%d"),
            "contact_point": settings.NOTICE_CONTACT_POINT,
        },
        message_key=f"r{link.pk}",
        contact=recipient,
        customer=customer,
        now=now,
    )
    link.save(update_fields=["email"])
    return link


def contacts_confirmation_request(
    *, customer: Customer, actor: Any | None = None, now: datetime | None = None
) -> list[ContactConfirmationRequest]:
    """Ask ``customer``'s deliverable administrative contacts to confirm its contacts: one
    request and one email (outbox, recipient's language) per contact. Returns the requests
    (``[]`` when no contact can receive one: the readiness page lists such a customer).

    Sets the customer's ``contacts_confirmation_requested_at``; audited
    (``contacts_confirmation_requested``) on its chain. ``actor``: the staff user who asked, or
    ``None`` for the schedule. Earlier links stay valid until they expire.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        recipients = list(Contact.objects.deliverable().filter(customer=locked).order_by("id"))
        if not recipients:
            return []
        links = [
            _request_send(
                customer=locked,
                recipient=recipient,
                purpose=ContactConfirmationRequest.Purpose.PERIODIC,
                now=now,
                requested_by=actor,
            )
            for recipient in recipients
        ]
        locked.contacts_confirmation_requested_at = now
        locked.save(update_fields=["contacts_confirmation_requested_at"])
        customer_audit_append(
            customer=locked,
            actor=actor,
            verb="contacts_confirmation_requested",
            data={
                "requests": [link.pk for link in links],
                "recipients": [recipient.email for recipient in recipients],
                "expires_at": _iso(now + link_lifetime()),
            },
            at=now,
        )
    return links


def customers_due_for_confirmation(now: datetime, *, limit: int) -> list[int]:
    """Ids of up to ``limit`` customers to ask now: never asked (first, by id), then asked
    ``CONTACT_CONFIRMATION_DAYS`` or more ago (longest-waiting first), each with at least one
    deliverable administrative contact. Two queries, each an index range of
    ``incidents_customer_confirm_due`` (an ``OR`` across ``NULL`` would read the whole table)."""
    cutoff = now - timedelta(days=settings.CONTACT_CONFIRMATION_DAYS)
    with_contact = Customer.objects.filter(
        Exists(Contact.objects.deliverable().filter(customer_id=OuterRef("pk")))
    )
    never = list(
        with_contact.filter(contacts_confirmation_requested_at__isnull=True)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    if len(never) >= limit:
        return never
    overdue = (
        with_contact.filter(contacts_confirmation_requested_at__lte=cutoff)
        .order_by("contacts_confirmation_requested_at", "id")
        .values_list("pk", flat=True)[: limit - len(never)]
    )
    return never + list(overdue)


def customers_mark_unconfirmed(*, now: datetime | None = None) -> int:
    """Mark "unconfirmed" each customer whose last request's links expired
    (``CONTACT_CONFIRMATION_LINK_DAYS`` after it was sent) with no confirmation since it was
    sent; returns how many were marked now. Audited (``contacts_unconfirmed``) per customer.
    Idempotent: a marked customer stays marked (and is not audited again) until it confirms.
    """
    now = now or timezone.now()
    expired_before = now - link_lifetime()
    candidates = Customer.objects.filter(
        contacts_unconfirmed_since__isnull=True, contacts_confirmation_requested_at__lte=expired_before
    ).filter(
        Q(contacts_confirmed_at__isnull=True)
        | Q(contacts_confirmed_at__lt=F("contacts_confirmation_requested_at"))
    )
    marked = 0
    for customer_id in candidates.values_list("pk", flat=True).iterator(chunk_size=500):
        with transaction.atomic():
            customer = Customer.objects.select_for_update().get(pk=customer_id)
            if customer.contacts_unconfirmed_since is not None:
                continue
            customer.contacts_unconfirmed_since = now
            customer.save(update_fields=["contacts_unconfirmed_since"])
            customer_audit_append(
                customer=customer,
                actor=None,
                verb="contacts_unconfirmed",
                data={
                    "requested_at": _iso(customer.contacts_confirmation_requested_at),
                    "last_confirmed_at": _iso(customer.contacts_confirmed_at),
                },
                at=now,
            )
        marked += 1
    return marked


@dataclass
class ConfirmationRound:
    """What one ``contacts_confirmation_round`` did: customers asked, requests (emails) written,
    customers marked unconfirmed, and whether more customers are due than this run took."""

    customers_asked: int = 0
    requests: int = 0
    customers_marked_unconfirmed: int = 0
    more_due: bool = False


def contacts_confirmation_round(
    *, now: datetime | None = None, limit: int | None = None
) -> ConfirmationRound:
    """The schedule's work: mark customers whose links expired unanswered, then ask up to
    ``limit`` (default ``CONTACT_CONFIRMATION_BATCH``) customers that are due
    (``customers_due_for_confirmation``). Safe to run any time and twice: a customer asked is
    not due again for ``CONTACT_CONFIRMATION_DAYS``."""
    now = now or timezone.now()
    limit = limit or settings.CONTACT_CONFIRMATION_BATCH
    result = ConfirmationRound(customers_marked_unconfirmed=customers_mark_unconfirmed(now=now))
    due = customers_due_for_confirmation(now, limit=limit + 1)
    result.more_due = len(due) > limit
    for customer in Customer.objects.filter(pk__in=due[:limit]).order_by("id"):
        links = contacts_confirmation_request(customer=customer, now=now)
        result.customers_asked += bool(links)
        result.requests += len(links)
    return result


# What the link's recipient does ----------------------------------------------------------------


def _audit_data(link: ContactConfirmationRequest, client_address: str) -> dict[str, Any]:
    return {"confirmation_request": link.pk, "client_address": client_address}


def confirmation_confirm(
    *, link: ContactConfirmationRequest, client_address: str, now: datetime | None = None
) -> list[Contact]:
    """The recipient confirms; the link is used up. A ``periodic`` link confirms the customer's
    administrative contacts as listed (``incidents.services.contacts_confirm``); a
    ``new_address`` link confirms the recipient's own address, which counts from now
    (``incidents.services.contact_confirm_address``). Returns the confirmed contacts. Raises
    ``LinkNotValid``."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked_open(link, now)
        if locked.purpose == ContactConfirmationRequest.Purpose.PERIODIC:
            confirmed = incident_services.contacts_confirm(
                customer=locked.customer,
                acting_contact=locked.recipient,
                at=now,
                audit_data=_audit_data(locked, client_address),
            )
        else:
            confirmed = [
                incident_services.contact_confirm_address(
                    contact=locked.recipient, at=now, audit_data=_audit_data(locked, client_address)
                )
            ]
        locked.used_at = now
        locked.save(update_fields=["used_at"])
    return confirmed


def _contact_of(link: ContactConfirmationRequest, contact_id: int) -> Contact:
    """One of the link's customer's active administrative contacts; ``LinkNotValid`` for any
    other id (another customer's contact is never reachable through a link)."""
    contact = Contact.objects.administrative().filter(pk=contact_id, customer_id=link.customer_id).first()
    if contact is None:
        raise LinkNotValid("No such contact for this link.")
    return contact


def confirmation_contact_correct(
    *,
    link: ContactConfirmationRequest,
    contact_id: int,
    name: str,
    language: str,
    client_address: str,
    now: datetime | None = None,
) -> Contact:
    """The recipient corrects a contact's name or language (``incidents.services.
    contact_update``, audited naming the recipient). Raises ``LinkNotValid`` (also for a
    contact that is not one of the customer's active administrative contacts, or a
    ``new_address`` link, which may only confirm or decline), ``ValidationError``."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked_open(link, now)
        if locked.purpose != ContactConfirmationRequest.Purpose.PERIODIC:
            raise LinkNotValid("This link only confirms an address.")
        contact = _contact_of(locked, contact_id)
        if not contact.language and language == choose_language(contact, locked.customer):
            language = ""  # still the customer's language, as the page showed it: no change
        return incident_services.contact_update(
            contact=contact,
            actor=None,
            acting_contact=locked.recipient,
            changes={"name": name, "language": language},
            audit_data=_audit_data(locked, client_address),
        )


def confirmation_contact_deactivate(
    *, link: ContactConfirmationRequest, contact_id: int, client_address: str, now: datetime | None = None
) -> Contact:
    """The recipient deactivates one of its customer's administrative contacts (never
    deleted). Refused (``ValidationError``) when no other active administrative contact would
    remain. A ``new_address`` link may deactivate only its own recipient (declining). Deactivating
    the recipient ends the link. Raises ``LinkNotValid``."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked_open(link, now)
        if (
            locked.purpose != ContactConfirmationRequest.Purpose.PERIODIC
            and contact_id != locked.recipient_id
        ):
            raise LinkNotValid("This link only confirms or declines its own address.")
        contact = _contact_of(locked, contact_id)
        others = (
            Contact.objects.administrative().filter(customer_id=locked.customer_id).exclude(pk=contact.pk)
        )
        if locked.purpose == ContactConfirmationRequest.Purpose.PERIODIC and not others.exists():
            raise ValidationError(
                "At least one administrative contact must remain: add a colleague before removing this one."
            )
        deactivated = incident_services.contact_update(
            contact=contact,
            actor=None,
            acting_contact=locked.recipient,
            changes={"is_active": False},
            audit_data=_audit_data(locked, client_address),
        )
        if contact.pk == locked.recipient_id:
            locked.used_at = now
            locked.save(update_fields=["used_at"])
    return deactivated


def confirmation_contact_add(
    *,
    link: ContactConfirmationRequest,
    name: str,
    email: str,
    language: str,
    client_address: str,
    now: datetime | None = None,
) -> Contact:
    """The recipient adds an administrative contact: created waiting for confirmation
    (``pending_confirmation``; it receives no notice and does not count), and emailed a
    ``new_address`` link of its own. Audited naming the recipient. Raises ``LinkNotValid``,
    ``ValidationError`` (a bad value, or an address the customer already has)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked_open(link, now)
        if locked.purpose != ContactConfirmationRequest.Purpose.PERIODIC:
            raise LinkNotValid("This link only confirms an address.")
        contact = incident_services.contact_create(
            customer=locked.customer,
            actor=None,
            acting_contact=locked.recipient,
            name=name,
            email=email,
            language=language,
            audit_data=_audit_data(locked, client_address),
        )
        _request_send(
            customer=locked.customer,
            recipient=contact,
            purpose=ContactConfirmationRequest.Purpose.NEW_ADDRESS,
            now=now,
            added_by=locked.recipient,
        )
    return contact
