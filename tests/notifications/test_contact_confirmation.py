"""Contact confirmation through a signed link: the emails (outbox, recipient's language), the
public page (only its customer's contacts; confirm, correct, deactivate, add; audited naming the
recipient), the links that do not work (altered, expired, used: 404, nothing changes), CSRF,
escaping, throttling, the schedule and the "unconfirmed" mark."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core import signing
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.audit import verify_chain
from incidents.models import Contact, Customer, CustomerAuditEvent
from notifications import confirmations
from notifications.models import ContactConfirmationRequest, OutgoingEmail
from notifications.sender import outbox_send_due

LINK = re.compile(r"https?://[^/\s]+(/contacts/confirm/[^/\s]+/)")


@pytest.fixture
def acme(db):
    """A customer with two administrative contacts (German and English), a technical contact
    and an inactive one (neither is ever asked nor shown)."""
    acme = Customer.objects.create(
        name="Acme Logistik GmbH", account_reference="ACME", preferred_language="de"
    )
    Contact.objects.create(customer=acme, name="Anna Admin", email="anna@acme.example", language="de")
    Contact.objects.create(customer=acme, name="Bob Boss", email="bob@acme.example", language="en")
    Contact.objects.create(customer=acme, name="Tech Person", email="tech@acme.example", role="technical")
    Contact.objects.create(customer=acme, name="Old Admin", email="old@acme.example", is_active=False)
    return acme


@pytest.fixture
def other(db):
    other = Customer.objects.create(name="Other Corp", account_reference="OTHER")
    Contact.objects.create(customer=other, name="Olga Other", email="olga@other.example")
    return other


def _link_of(customer: Customer, email: str) -> ContactConfirmationRequest:
    links = confirmations.contacts_confirmation_request(customer=customer)
    return next(link for link in links if link.recipient.email == email)


def _path(link: ContactConfirmationRequest) -> str:
    return reverse("contacts:confirm", args=[confirmations.confirmation_token(link)])


def _events(customer: Customer) -> list[CustomerAuditEvent]:
    return list(CustomerAuditEvent.objects.filter(customer=customer).order_by("sequence"))


def _snapshot(customer: Customer) -> list[Any]:
    return list(Contact.objects.filter(customer=customer).order_by("pk").values())


def test_it_emails_each_deliverable_administrative_contact_a_link_in_its_language(smtp_server, acme):
    links = confirmations.contacts_confirmation_request(customer=acme)

    assert sorted(link.recipient.email for link in links) == ["anna@acme.example", "bob@acme.example"]
    assert OutgoingEmail.objects.filter(status="pending").count() == 2  # a row first
    report = outbox_send_due()

    assert report.sent == 2
    by_address = {received.recipients[0]: received for received in smtp_server.received}
    assert sorted(by_address) == ["anna@acme.example", "bob@acme.example"]
    anna, bob = by_address["anna@acme.example"], by_address["bob@acme.example"]
    assert (
        anna.message["Subject"] == "Bitte bestätigen Sie die administrativen Kontakte von Acme Logistik GmbH"
    )
    assert anna.message["Content-Language"] == "de"
    assert bob.message["Subject"] == "Please confirm the administrative contacts of Acme Logistik GmbH"
    for received in (anna, bob):
        assert LINK.findall(received.text()) and LINK.findall(received.html())
        assert received.message_id.startswith("<contact-confirmation.r")
    assert LINK.findall(anna.text())[0] != LINK.findall(bob.text())[0]  # one link each
    acme.refresh_from_db()
    assert acme.contacts_confirmation_requested_at is not None
    assert _events(acme)[-1].verb == "contacts_confirmation_requested"
    assert OutgoingEmail.objects.filter(status="sent").count() == 2


def test_a_token_page_shows_only_its_customers_administrative_contacts(acme, other, make_incident):
    make_incident(state="declared", title="Secret incident about someone else")
    link = _link_of(acme, "bob@acme.example")

    response = Client().get(_path(link))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Anna Admin" in page and "anna@acme.example" in page and "bob@acme.example" in page
    for hidden in ("Olga", "olga@other.example", "Other Corp", "tech@acme.example", "old@acme.example"):
        assert hidden not in page, hidden
    assert "Secret incident" not in page and "BD-" not in page
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]


def test_the_page_is_in_the_recipients_language(acme):
    page = Client().get(_path(_link_of(acme, "anna@acme.example"))).content.decode()

    assert '<html lang="de">' in page
    assert "Administrative Kontakte von Acme Logistik GmbH" in page
    assert "Diese Kontakte bestätigen" in page


def test_confirming_is_audited_naming_the_recipient_and_uses_the_link_up(acme):
    link = _link_of(acme, "bob@acme.example")
    client = Client()

    response = client.post(_path(link), {"action": "confirm"})

    assert (
        response.status_code == 302 and response["Location"] == reverse("contacts:confirmed") + "?language=en"
    )
    acme.refresh_from_db()
    assert acme.contacts_confirmed_at is not None and acme.contacts_unconfirmed_since is None
    confirmed = Contact.objects.filter(customer=acme, confirmed_at__isnull=False)
    assert sorted(confirmed.values_list("email", flat=True)) == ["anna@acme.example", "bob@acme.example"]
    event = _events(acme)[-1]
    assert (event.verb, event.actor_contact_email, event.actor_id) == (
        "contacts_confirmed",
        "bob@acme.example",
        None,
    )
    assert event.data["confirmation_request"] == link.pk
    assert event.data["client_address"] == "127.0.0.1"
    assert verify_chain(customer_ids=[acme.pk]) == []
    # Used: the same link now answers 404, for reading and for writing.
    assert client.get(_path(link)).status_code == 404
    before = _snapshot(acme)
    anna = Contact.objects.get(email="anna@acme.example")
    again = client.post(
        _path(link),
        {
            "action": "correct",
            "contact": anna.pk,
            f"correct-{anna.pk}-contact": anna.pk,
            f"correct-{anna.pk}-name": "Changed",
            f"correct-{anna.pk}-language": "en",
        },
    )
    assert again.status_code == 404
    assert _snapshot(acme) == before


def test_correcting_a_name_and_language_is_audited(acme):
    link = _link_of(acme, "bob@acme.example")
    anna = Contact.objects.get(email="anna@acme.example")
    path = _path(link)

    response = Client().post(
        path,
        {
            "action": "correct",
            "contact": anna.pk,
            f"correct-{anna.pk}-contact": anna.pk,
            f"correct-{anna.pk}-name": "Anna Admin-Berger",
            f"correct-{anna.pk}-language": "fr",
        },
    )

    assert response.status_code == 302 and response["Location"] == path  # the link keeps working
    anna.refresh_from_db()
    assert (anna.name, anna.language, anna.email) == ("Anna Admin-Berger", "fr", "anna@acme.example")
    event = _events(acme)[-1]
    assert event.verb == "contact_updated" and event.actor_contact_email == "bob@acme.example"
    assert event.data["changes"] == {"name": ["Anna Admin", "Anna Admin-Berger"], "language": ["de", "fr"]}


def test_adding_a_colleague_counts_only_once_the_new_address_confirms_itself(smtp_server, acme):
    link = _link_of(acme, "bob@acme.example")
    outbox_send_due()
    smtp_server.received.clear()

    response = Client().post(
        _path(link),
        {
            "action": "add",
            "add-name": "Carla Colleague",
            "add-email": "carla@Acme.Example",
            "add-language": "es",
        },
    )

    assert response.status_code == 302
    carla = Contact.objects.get(customer=acme, email="carla@acme.example")
    assert carla.pending_confirmation and not carla.is_deliverable
    assert not Contact.objects.deliverable().filter(pk=carla.pk).exists()
    added = _events(acme)[-1]
    assert (added.verb, added.actor_contact_email) == ("contact_added", "bob@acme.example")
    assert added.data["pending_confirmation"] is True

    outbox_send_due()
    (received,) = smtp_server.received
    assert received.recipients == ["carla@acme.example"]
    assert received.message["Content-Language"] == "es"
    assert "Bob Boss" in received.text()  # who added her
    new_address_path = LINK.findall(received.text())[0]
    page = Client().get(new_address_path).content.decode()
    assert "Confirmar mi dirección" in page and "Añadir a un compañero" not in page  # confirm or decline only

    confirmed = Client().post(new_address_path, {"action": "confirm"})

    assert confirmed.status_code == 302
    carla.refresh_from_db()
    assert carla.is_deliverable and carla.confirmed_at is not None
    event = _events(acme)[-1]
    assert (event.verb, event.actor_contact_email) == ("contact_address_confirmed", "carla@acme.example")
    assert verify_chain(customer_ids=[acme.pk]) == []


def test_a_new_address_can_decline(acme):
    link = _link_of(acme, "bob@acme.example")
    Client().post(
        _path(link),
        {"action": "add", "add-name": "Dan", "add-email": "dan@acme.example", "add-language": "en"},
    )
    dan = Contact.objects.get(email="dan@acme.example")
    own = ContactConfirmationRequest.objects.get(recipient=dan)

    response = Client().post(
        _path(own), {"action": "deactivate", "contact": dan.pk, f"deactivate-{dan.pk}-contact": dan.pk}
    )

    assert response.status_code == 302 and response["Location"].startswith(reverse("contacts:confirmed"))
    dan.refresh_from_db()
    assert not dan.is_active
    assert Client().get(_path(own)).status_code == 404  # the recipient is gone: its link too


def test_deactivating_keeps_the_contact_and_refuses_to_remove_the_last_one(acme):
    link = _link_of(acme, "bob@acme.example")
    anna = Contact.objects.get(email="anna@acme.example")
    bob = link.recipient
    client = Client()

    response = client.post(
        _path(link), {"action": "deactivate", "contact": anna.pk, f"deactivate-{anna.pk}-contact": anna.pk}
    )

    assert response.status_code == 302
    anna.refresh_from_db()
    assert not anna.is_active  # deactivated, never deleted
    assert _events(acme)[-1].data["changes"] == {"is_active": [True, False]}

    last = client.post(
        _path(link), {"action": "deactivate", "contact": bob.pk, f"deactivate-{bob.pk}-contact": bob.pk}
    )

    assert last.status_code == 400
    assert "At least one administrative contact must remain" in last.content.decode()
    bob.refresh_from_db()
    assert bob.is_active


def test_an_address_the_customer_already_has_is_a_form_error(acme):
    link = _link_of(acme, "bob@acme.example")
    before = _snapshot(acme)

    response = Client().post(
        _path(link),
        {"action": "add", "add-name": "Anna Again", "add-email": "ANNA@acme.example", "add-language": "de"},
    )

    assert response.status_code == 400
    assert "already a contact of this customer" in response.content.decode()
    assert _snapshot(acme) == before


def test_an_altered_token_answers_404_and_changes_nothing(acme, other):
    link = _link_of(acme, "bob@acme.example")
    token = confirmations.confirmation_token(link)
    other_link = _link_of(other, "olga@other.example")
    payload, _, signature = token.rpartition(":")
    forged = signing.dumps({"r": other_link.pk, "c": other.pk}, salt="another.salt")
    before = _snapshot(acme), _snapshot(other)
    events_before = CustomerAuditEvent.objects.count()
    anna = Contact.objects.get(email="anna@acme.example")

    for bad in (
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        payload + ":" + signature[::-1],
        forged,
        "nonsense",
    ):
        path = reverse("contacts:confirm", args=[bad])
        assert Client().get(path).status_code == 404, bad
        assert Client().post(path, {"action": "confirm"}).status_code == 404, bad
        assert (
            Client()
            .post(
                path,
                {
                    "action": "correct",
                    "contact": anna.pk,
                    f"correct-{anna.pk}-contact": anna.pk,
                    f"correct-{anna.pk}-name": "Hacked",
                    f"correct-{anna.pk}-language": "en",
                },
            )
            .status_code
            == 404
        )

    assert (_snapshot(acme), _snapshot(other)) == before
    assert CustomerAuditEvent.objects.count() == events_before


def test_a_token_naming_another_customer_answers_404(acme, other):
    link = _link_of(acme, "bob@acme.example")
    # Signed with the real key and salt, but naming the request with the wrong customer.
    mismatched = signing.dumps({"r": link.pk, "c": other.pk}, salt=confirmations.CONFIRMATION_SALT)

    assert Client().get(reverse("contacts:confirm", args=[mismatched])).status_code == 404


def test_an_expired_token_answers_404_and_changes_nothing(acme, monkeypatch, settings):
    link = _link_of(acme, "bob@acme.example")
    before = _snapshot(acme)
    # The request row's own expiry.
    ContactConfirmationRequest.objects.filter(pk=link.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert Client().post(_path(link), {"action": "confirm"}).status_code == 404
    # The signature's age: a token signed longer ago than CONTACT_CONFIRMATION_LINK_DAYS.
    ContactConfirmationRequest.objects.filter(pk=link.pk).update(
        expires_at=timezone.now() + timedelta(days=1)
    )
    signed_at = time.time() - (settings.CONTACT_CONFIRMATION_LINK_DAYS * 86400 + 60)
    monkeypatch.setattr(time, "time", lambda: signed_at)  # what signing stamps tokens with
    old_token = confirmations.confirmation_token(link)
    monkeypatch.undo()

    assert Client().get(reverse("contacts:confirm", args=[old_token])).status_code == 404
    assert (
        Client().post(reverse("contacts:confirm", args=[old_token]), {"action": "confirm"}).status_code == 404
    )
    assert _snapshot(acme) == before
    acme.refresh_from_db()
    assert acme.contacts_confirmed_at is None


def test_a_contact_of_another_customer_cannot_be_reached_through_a_link(acme, other):
    link = _link_of(acme, "bob@acme.example")
    olga = Contact.objects.get(email="olga@other.example")
    before = _snapshot(other)

    for data in (
        {
            "action": "correct",
            "contact": olga.pk,
            f"correct-{olga.pk}-contact": olga.pk,
            f"correct-{olga.pk}-name": "Hacked",
            f"correct-{olga.pk}-language": "en",
        },
        {"action": "deactivate", "contact": olga.pk, f"deactivate-{olga.pk}-contact": olga.pk},
    ):
        assert Client().post(_path(link), data).status_code == 404

    assert _snapshot(other) == before


def test_the_forms_need_the_csrf_token(acme):
    link = _link_of(acme, "bob@acme.example")
    client = Client(enforce_csrf_checks=True)

    refused = client.post(_path(link), {"action": "confirm"})

    assert refused.status_code == 403
    acme.refresh_from_db()
    assert acme.contacts_confirmed_at is None
    page = client.get(_path(link))
    token = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[0]
    accepted = client.post(_path(link), {"action": "confirm", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302


def test_names_are_escaped(acme):
    Contact.objects.filter(email="anna@acme.example").update(name='<script>alert("x")</script>')
    Customer.objects.filter(pk=acme.pk).update(name="Acme <b>bold</b>")

    page = Client().get(_path(_link_of(acme, "bob@acme.example"))).content.decode()

    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<b>bold</b>" not in page


def test_it_throttles_per_token_and_per_address(acme, settings):
    settings.CONTACT_CONFIRMATION_REQUESTS_PER_TOKEN = 3
    settings.CONTACT_CONFIRMATION_REQUESTS_PER_ADDRESS = 5
    bob = _path(_link_of(acme, "bob@acme.example"))
    anna = _path(_link_of(acme, "anna@acme.example"))

    assert [Client().get(bob).status_code for _ in range(4)] == [200, 200, 200, 429]
    throttled = Client().get(bob)
    assert throttled.status_code == 429 and throttled["Retry-After"] == "3600"
    # Another address may still use another link, until that address is over its own limit.
    assert Client(REMOTE_ADDR="192.0.2.9").get(anna).status_code == 200
    assert [Client().get(anna).status_code for _ in range(2)] == [429, 429]  # 127.0.0.1 is over 5
    # Guessing tokens counts against the address too.
    assert (
        Client(REMOTE_ADDR="192.0.2.10").get(reverse("contacts:confirm", args=["guess"])).status_code == 404
    )


@pytest.mark.redis
def test_the_throttle_counts_in_a_shared_redis_cache(acme, settings, shared_redis_cache):
    settings.CONTACT_CONFIRMATION_REQUESTS_PER_TOKEN = 2
    path = _path(_link_of(acme, "bob@acme.example"))

    assert [Client().get(path).status_code for _ in range(3)] == [200, 200, 429]


def test_the_round_asks_customers_when_due_and_marks_those_that_do_not_answer(acme, other, settings):
    now = timezone.now()
    silent = Customer.objects.create(name="Silent AG", account_reference="SILENT")

    first = confirmations.contacts_confirmation_round(now=now)

    assert (first.customers_asked, first.requests) == (2, 3)  # Silent has nobody to ask
    assert confirmations.contacts_confirmation_round(now=now + timedelta(days=1)).customers_asked == 0
    # Acme confirms; Other does not answer before its links expire.
    confirmations.confirmation_confirm(
        link=ContactConfirmationRequest.objects.filter(customer=acme)[0],
        client_address="192.0.2.1",
        now=now,
    )
    link_days = settings.CONTACT_CONFIRMATION_LINK_DAYS
    before_expiry = confirmations.contacts_confirmation_round(
        now=now + timedelta(days=link_days) - timedelta(minutes=1)
    )
    assert before_expiry.customers_marked_unconfirmed == 0
    after_expiry = confirmations.contacts_confirmation_round(now=now + timedelta(days=link_days, minutes=1))

    assert after_expiry.customers_marked_unconfirmed == 1
    other.refresh_from_db()
    acme.refresh_from_db()
    silent.refresh_from_db()
    assert other.is_unconfirmed and not acme.is_unconfirmed and not silent.is_unconfirmed
    assert _events(other)[-1].verb == "contacts_unconfirmed"
    assert confirmations.customers_mark_unconfirmed(now=now + timedelta(days=link_days + 2)) == 0  # once
    # A period later both are asked again; Other stays unconfirmed until it confirms.
    period = timedelta(days=settings.CONTACT_CONFIRMATION_DAYS)
    again = confirmations.contacts_confirmation_round(now=now + period)
    assert again.customers_asked == 2
    other.refresh_from_db()
    assert other.is_unconfirmed
    newest = ContactConfirmationRequest.objects.filter(customer=other).order_by("-created_at")[0]
    confirmations.confirmation_confirm(link=newest, client_address="192.0.2.1", now=now + period)
    other.refresh_from_db()
    assert not other.is_unconfirmed


def test_the_round_takes_a_batch_and_says_more_are_due(db, settings):
    for number in range(3):
        customer = Customer.objects.create(name=f"Customer {number}", account_reference=f"C-{number}")
        Contact.objects.create(customer=customer, name="Admin", email=f"admin{number}@example.com")

    result = confirmations.contacts_confirmation_round(limit=2)

    assert (result.customers_asked, result.more_due) == (2, True)
    assert confirmations.contacts_confirmation_round(limit=2).more_due is False


def test_the_command_asks_due_customers_or_the_named_ones(acme, other):
    out = StringIO()
    call_command("send_contact_confirmations", stdout=out)
    assert "Asked 2 customer(s): 3 confirmation request(s) queued." in out.getvalue()
    again = StringIO()
    call_command("send_contact_confirmations", stdout=again)
    assert "Asked 0 customer(s)" in again.getvalue()

    named = StringIO()
    call_command("send_contact_confirmations", "--customer", "OTHER", stdout=named)
    assert "OTHER: 1 confirmation request(s) queued." in named.getvalue()
    with pytest.raises(CommandError, match="No customer with account reference NOPE"):
        call_command("send_contact_confirmations", "--customer", "NOPE")


def test_beat_runs_the_round_daily_and_the_task_queues_itself_while_more_are_due(db, settings, monkeypatch):
    from config.celery import app
    from notifications import tasks

    entry = app.conf.beat_schedule["send-contact-confirmations"]
    assert entry["task"] == "notifications.tasks.send_contact_confirmations"
    for number in range(3):
        customer = Customer.objects.create(name=f"Customer {number}", account_reference=f"C-{number}")
        Contact.objects.create(customer=customer, name="Admin", email=f"admin{number}@example.com")
    settings.CONTACT_CONFIRMATION_BATCH = 1
    queued = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args: queued.append(task.name))

    result = tasks.send_contact_confirmations()

    assert result["customers_asked"] == 1 and result["more_due"] is True
    assert queued == ["notifications.tasks.send_contact_confirmations"]


def test_a_name_corrected_alone_leaves_the_customers_language_as_it_was(acme):
    Contact.objects.filter(email="anna@acme.example").update(language="")  # follows the customer (de)
    link = _link_of(acme, "bob@acme.example")
    anna = Contact.objects.get(email="anna@acme.example")

    confirmations.confirmation_contact_correct(
        link=link, contact_id=anna.pk, name="Anna A.", language="de", client_address="192.0.2.1"
    )

    anna.refresh_from_db()
    assert (anna.name, anna.language) == ("Anna A.", "")
    assert _events(acme)[-1].data["changes"] == {"name": ["Anna Admin", "Anna A."]}


@pytest.mark.parametrize("language", ["de", "fr", "es", "ja"])
def test_every_string_of_the_emails_and_the_page_is_translated(language):
    import ast
    from pathlib import Path

    import polib
    from django.conf import settings
    from django.template import engines
    from django.template.backends.django import DjangoTemplates
    from django.templatetags.i18n import BlockTranslateNode, TranslateNode

    root = Path(settings.BASE_DIR)
    engine = engines["django"]
    assert isinstance(engine, DjangoTemplates)
    wanted: set[str] = set()
    for folder in ("templates/emails", "templates/contacts"):
        for path in sorted((root / folder).rglob("*")):
            if not path.is_file():
                continue
            nodelist = engine.from_string(path.read_text()).template.nodelist
            for node in nodelist.get_nodes_by_type(TranslateNode):
                assert isinstance(node, TranslateNode)
                wanted.add(str(node.filter_expression.var.literal))
            for block in nodelist.get_nodes_by_type(BlockTranslateNode):
                assert isinstance(block, BlockTranslateNode)
                wanted.add(block.render_token_list(block.singular)[0])
    for module in ("notifications/contact_views.py", "notifications/contact_forms.py"):
        for call in ast.walk(ast.parse((root / module).read_text())):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) in (
                "_",
                "gettext",
                "gettext_lazy",
            ):
                first = call.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str)
                wanted.add(first.value)
    catalogue = polib.pofile(str(root / "locale" / language / "LC_MESSAGES" / "django.po"))
    translated = {entry.msgid for entry in catalogue if entry.translated()}

    assert len(wanted) > 40
    assert wanted - translated == set()  # run makemessages and translate after adding a string
