"""Addresses done right (issue 8): IDNA 2008 domains, display names in ``To``, SMTPUTF8 where
the relay offers it, header values without line breaks. Deliveries go through a real aiosmtpd
server; the assertions are on its SMTP envelope (``RCPT TO``) and the headers it received."""

from __future__ import annotations

import email
import email.policy
import unicodedata

import pytest
from django.core.exceptions import ValidationError

from incidents import services
from incidents.addresses import has_line_break, header_text, normalise_email, recipient
from incidents.models import Contact, Customer

# --- Units --------------------------------------------------------------------------------------


def test_has_line_break_flags_exactly_the_line_breaks_and_control_characters():
    """Its shortcut for printable text gives the character-by-character answer for every
    character of the Basic Multilingual Plane: CR, LF, NEL, U+2028/U+2029 and every other
    control character (Unicode category Cc) but the tab."""
    breaks = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    for code in range(0x10000):
        character = chr(code)
        if unicodedata.category(character) == "Cs":
            continue  # lone surrogates are not text
        expected = character != "\t" and (character in breaks or unicodedata.category(character) == "Cc")
        assert has_line_break(f"a{character}b") is expected, hex(code)
    assert has_line_break("admin0@bench-00001.example") is False


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("info@faß.de", "info@xn--fa-hia.de"),  # IDNA 2003 gave fass.de: another domain
        ("a@ς.example", "a@xn--3xa.example"),  # the final sigma kept (IDNA 2003: σ)
        ("taro@例え.jp", "taro@xn--r8jz45g.jp"),
        (" Olivia.Bennett@Northwind.EXAMPLE ", "Olivia.Bennett@northwind.example"),  # local part kept
        ("josé@example.com", "josé@example.com"),
        ("ops@S30-.Example", "ops@s30-.example"),  # ASCII: nothing to encode, only lower case
    ],
)
def test_it_normalises_the_domain_with_idna_2008_and_keeps_the_local_part(given, stored):
    assert normalise_email(given) == stored


@pytest.mark.parametrize("address", ["a@-faß.de", "a@faß-.de", "a@under_faß.de", "a@faß..de"])
def test_it_refuses_a_domain_that_cannot_be_encoded_with_the_reason(address):
    with pytest.raises(ValidationError) as refused:
        normalise_email(address)

    assert refused.value.code == "invalid_domain"
    assert "cannot be encoded for email (IDNA 2008)" in refused.value.messages[0]
    assert address in refused.value.messages[0]


def test_it_refuses_a_line_break_in_an_address():
    with pytest.raises(ValidationError, match="line breaks"):
        normalise_email("a@example.com\r\nBcc: eve@evil.example")


def test_it_keeps_a_comma_in_a_display_name_inside_the_name():
    to = recipient("Bennett, Olivia", "Olivia.Bennett@Northwind.example")

    assert to.envelope == "Olivia.Bennett@northwind.example"
    assert to.header == '"Bennett, Olivia" <Olivia.Bennett@northwind.example>'


def test_it_encodes_a_display_name_that_is_not_ascii():
    import email.headerregistry

    to = recipient("Jürgen Groß\r\nBcc: eve@evil.example", "info@faß.de")

    assert to.header.isascii() and "\n" not in to.header and "\r" not in to.header
    assert to.header.endswith(" <info@xn--fa-hia.de>")
    decoded = str(email.headerregistry.HeaderRegistry()("To", to.header))
    assert "Jürgen Groß Bcc: eve@evil.example" in decoded and decoded.count("@") == 2


def test_it_strips_line_breaks_and_control_characters_from_header_text():
    assert (
        header_text("Acme\r\nBcc: eve@evil.example\x00\x07 \u2028 Ltd\t ") == "Acme Bcc: eve@evil.example Ltd"
    )
    assert header_text(None) == ""


# --- Delivery through a real SMTP server ----------------------------------------------------


@pytest.fixture
def smtputf8_server(settings):
    """A real SMTP server that offers SMTPUTF8 (RFC 6531) after EHLO; yields its ``MailSink``."""
    from notifications.mail_sink import MailSink, start_mail_sink

    sink = MailSink()
    controller = start_mail_sink(sink, smtputf8=True)
    settings.MAILERS = {
        "default": {
            "BACKEND": "incidents.mail.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": controller.port, "timeout": 5},
        }
    }
    yield sink
    controller.stop()


@pytest.fixture
def northwind(db, superuser):
    """A customer whose contacts live at faß.de, ς.example and 例え.jp, one named with a comma;
    created through the services (so stored normalised)."""
    customer = Customer.objects.create(name="Northwind Traders", account_reference="NORTHWIND")
    for name, address in [
        ("Info Faß", "info@faß.de"),
        ("Sigma", "a@ς.example"),
        ("山田 太郎", "taro@例え.jp"),
        ("Bennett, Olivia", "Olivia.Bennett@Northwind.example"),
    ]:
        services.contact_create(customer=customer, actor=superuser, name=name, email=address)
    return customer


def _notify(make_incident, responder, manager, customer):
    """Declare an incident affecting ``customer``, approve its initial notice (deliveries
    created as the worker would), and run the sender once; returns the send report."""
    from notifications.sender import outbox_send_due
    from notifications.services import notice_approve, notice_deliveries_create, notice_draft

    incident = make_incident(state="triaged")
    services.affected_customer_add(incident=incident, customer=customer, actor=responder)
    incident = services.incident_declare(
        incident=incident, actor=manager, nature_of_breach="A mailbox was accessed by an unknown party."
    )
    notice = notice_approve(
        notice=notice_draft(incident=incident, actor=manager, kind="initial"), actor=manager
    )
    notice_deliveries_create(notice_id=notice.pk)
    return outbox_send_due()


def _received_by_envelope(sink):
    return {received.recipients[0]: received for received in sink.received}


def test_it_stores_contacts_with_their_domains_encoded(northwind):
    assert sorted(Contact.objects.filter(customer=northwind).values_list("email", flat=True)) == [
        "Olivia.Bennett@northwind.example",
        "a@xn--3xa.example",
        "info@xn--fa-hia.de",
        "taro@xn--r8jz45g.jp",
    ]


def test_it_delivers_notices_to_the_idna_2008_domains_with_display_names(
    smtp_server, northwind, make_incident, responder, manager
):
    report = _notify(make_incident, responder, manager, northwind)

    assert report.sent == 4 and report.failed == 0
    received = _received_by_envelope(smtp_server)
    assert sorted(received) == [
        "Olivia.Bennett@northwind.example",
        "a@xn--3xa.example",  # ς, not σ (xn--4xa)
        "info@xn--fa-hia.de",  # not fass.de
        "taro@xn--r8jz45g.jp",
    ]
    to = {envelope: message.message["To"] for envelope, message in received.items()}
    olivia = to["Olivia.Bennett@northwind.example"].addresses
    assert len(olivia) == 1  # the comma did not split the address
    assert (olivia[0].display_name, olivia[0].addr_spec) == (
        "Bennett, Olivia",
        "Olivia.Bennett@northwind.example",
    )
    assert to["taro@xn--r8jz45g.jp"].addresses[0].display_name == "山田 太郎"
    assert to["info@xn--fa-hia.de"].addresses[0].display_name == "Info Faß"
    assert all(message.raw.isascii() for message in received.values())


def test_it_puts_the_contact_name_in_to_for_other_emails(smtp_server, northwind):
    from notifications.emails import outgoing_email_queue
    from notifications.models import OutgoingEmail
    from notifications.sender import outbox_send_due

    contact = Contact.objects.get(customer=northwind, email__startswith="Olivia")
    outgoing_email_queue(
        kind=OutgoingEmail.Kind.CONTACT_ADDRESS_CONFIRMATION,
        address=contact.email,
        language="en",
        context={"contact": contact, "customer": northwind, "link": "https://breachdesk.test/c/1/"},
        message_key=f"addresses-{contact.pk}",
        contact=contact,
        customer=northwind,
    )

    assert outbox_send_due().sent == 1
    (received,) = smtp_server.received
    assert received.recipients == ["Olivia.Bennett@northwind.example"]
    (to,) = received.message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Bennett, Olivia", "Olivia.Bennett@northwind.example")


def test_it_delivers_an_internationalised_local_part_with_smtputf8_when_the_relay_offers_it(
    smtputf8_server, db, superuser, make_incident, responder, manager
):
    from notifications.models import Delivery

    customer = Customer.objects.create(name="Café Crème SARL", account_reference="CAFE")
    services.contact_create(customer=customer, actor=superuser, name="José Núñez", email="josé@faß.de")

    report = _notify(make_incident, responder, manager, customer)

    assert report.sent == 1
    (received,) = smtputf8_server.received
    assert received.recipients == ["josé@xn--fa-hia.de"]
    # An RFC 6532 message: its headers are UTF-8 (the sink's byte parser would escape them).
    message = email.message_from_string(received.raw.decode("utf-8"), policy=email.policy.default)
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("José Núñez", "josé@xn--fa-hia.de")
    delivery = Delivery.objects.get(customer=customer)
    assert delivery.status == Delivery.Status.SENT
    assert "josé@xn--fa-hia.de".encode() in delivery.sent_message.content


def test_it_fails_an_internationalised_local_part_clearly_when_the_relay_lacks_smtputf8(
    smtp_server, db, superuser, make_incident, responder, manager
):
    from notifications.models import Delivery

    customer = Customer.objects.create(name="Café Crème SARL", account_reference="CAFE")
    josé = services.contact_create(
        customer=customer, actor=superuser, name="José Núñez", email="josé@example.fr"
    )
    services.contact_create(customer=customer, actor=superuser, name="Marie", email="marie@example.fr")

    report = _notify(make_incident, responder, manager, customer)

    assert (report.sent, report.failed, report.retried) == (1, 1, 0)  # failed for good, not retried
    assert [received.recipients for received in smtp_server.received] == [["marie@example.fr"]]
    failed = Delivery.objects.get(contact=josé)
    assert failed.status == Delivery.Status.FAILED
    assert failed.last_error.startswith(
        "The relay does not offer SMTPUTF8, needed for the internationalised address"
    )
    assert "josé@example.fr" in failed.last_error
    josé.refresh_from_db()
    assert josé.undeliverable_at is None  # our relay's limit, not a refusal of the address


def test_it_sends_the_escalation_of_a_customer_whose_stored_name_has_a_line_break(
    smtp_server, make_incident, responder, manager, django_capture_on_commit_callbacks
):
    from notifications.models import Clock, Escalation
    from notifications.sender import outbox_send_due
    from notifications.services import escalation_raise

    incident = make_incident(state="declared")
    # A row stored before names were checked: the validators refuse it now, the email must not die.
    Customer.objects.filter(account_reference="FIXTURE-001").update(
        name="Fixture\r\nBcc: eve@evil.example Ltd"
    )
    clock = Clock.objects.select_related("incident", "customer").get(incident=incident)

    with django_capture_on_commit_callbacks(execute=True):
        escalation = escalation_raise(clock=clock, threshold=Escalation.Threshold.HOURS_24)
    outbox_send_due()  # in case escalations go through the outbox

    assert escalation is not None
    subjects = [str(received.message["Subject"]) for received in smtp_server.received]
    assert any("Fixture Bcc: eve@evil.example Ltd" in subject for subject in subjects), subjects
    assert all("eve@evil.example" not in received.recipients for received in smtp_server.received)
    assert all(received.message["Bcc"] is None for received in smtp_server.received)


def test_it_sends_an_outbox_email_whose_stored_subject_has_a_line_break(smtp_server, northwind):
    from notifications.emails import outgoing_email_queue
    from notifications.models import OutgoingEmail
    from notifications.sender import outbox_send_due

    contact = Contact.objects.get(customer=northwind, email__startswith="Olivia")
    row = outgoing_email_queue(
        kind=OutgoingEmail.Kind.CONTACT_CONFIRMATION,
        address=contact.email,
        language="en",
        context={"customer_name": "Northwind", "contacts": [], "link": "https://breachdesk.test/c/1/"},
        message_key=f"subject-{contact.pk}",
        contact=contact,
        customer=northwind,
    )
    # A row written before values were checked (Django refuses such a header: "Header values
    # may not contain linefeed or carriage return characters", and the email was lost).
    OutgoingEmail.objects.filter(pk=row.pk).update(subject="Please confirm\r\nBcc: eve@evil.example")

    assert outbox_send_due().sent == 1
    row.refresh_from_db()
    assert row.status == OutgoingEmail.Status.SENT
    (received,) = smtp_server.received
    assert received.message["Subject"] == "Please confirm Bcc: eve@evil.example"
    assert received.message["Bcc"] is None and received.recipients == ["Olivia.Bennett@northwind.example"]
