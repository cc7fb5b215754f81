"""Notices a controller can act on (issue 12): each customer's own figures, every GDPR Art. 33(3)
item in every language, free text per language, threaded updates numbered update 1, 2, ...,
typography by Babel, and approval that answers at once while a worker creates the deliveries."""

from __future__ import annotations

import email
import email.policy
import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from incidents import services as incident_services
from incidents.exceptions import ActionForbidden
from incidents.models import AffectedCustomer, Contact, Customer, LikelyConsequence
from notifications.messages import build_body, fold_header
from notifications.models import Delivery, Notice, NoticeMessage, NoticeRecipient
from notifications.rendering import salutation
from notifications.scanner import deadlines_scan
from notifications.sender import deliveries_send_due
from notifications.services import (
    notice_approve,
    notice_deliveries_create,
    notice_draft,
    notice_preview,
    translation_set,
)
from tests.notifications.support import approve, run_delivery_worker

LANGUAGES = ["en", "de", "fr", "es", "ja"]


@pytest.fixture
def two_customers(db):
    """A German and a French customer (one administrative contact each)."""
    german = Customer.objects.create(
        name="Acme Logistik GmbH", account_reference="ACME", preferred_language="de"
    )
    french = Customer.objects.create(
        name="Atelier Dupont SARL", account_reference="ATELIER", preferred_language="fr"
    )
    Contact.objects.create(customer=german, name="Anna Admin", email="anna@acme.example")
    Contact.objects.create(customer=french, name="Claire Dupont", email="claire@atelier.example")
    return german, french


@pytest.fixture
def declared(make_incident, manager, responder, two_customers):
    """A declared incident: 240 records in all; Acme 200 records and 150 people, Atelier 40
    records and 12 people (distinct numbers, so a leak is visible)."""
    german, french = two_customers
    incident = make_incident(state="triaged", records_affected=240, data_subjects_affected=162)
    incident_services.affected_customer_add(
        incident=incident, customer=german, actor=responder, records_affected=200, data_subjects_affected=150
    )
    incident_services.affected_customer_add(
        incident=incident,
        customer=french,
        actor=responder,
        records_affected=40,
        records_affected_is_estimate=True,
        data_subjects_affected=12,
    )
    return incident_services.incident_declare(
        incident=incident,
        actor=manager,
        nature_of_breach="A support mailbox was accessed by an unknown party.",
    )


def _parts(received) -> list[str]:
    return [str(received.message["Subject"]), received.text(), html.unescape(received.html())]


def _by_address(sink):
    return {received.recipients[0]: received for received in sink.received}


def test_each_customer_is_told_its_own_figures_and_never_the_others(smtp_server, declared, manager):
    approve(notice_draft(incident=declared, actor=manager, kind="initial"), manager)
    deliveries_send_due()

    messages = _by_address(smtp_server)
    german, french = messages["anna@acme.example"], messages["claire@atelier.example"]

    def shows(part: str, count: int) -> bool:  # a figure as notices write one: "40 (..."
        return re.search(rf"(?<![\d.,\u202f\u00a0]){count} \(", part) is not None

    for part in _parts(german):
        assert not any(shows(part, n) for n in (240, 162, 40, 12))  # incident-wide, Atelier's
    assert shows(german.text(), 200) and shows(german.text(), 150)
    assert "200 (genaue Zahl)" in german.text() and "150 (genaue Zahl)" in german.text()
    for part in _parts(french):
        assert not any(shows(part, n) for n in (240, 162, 200, 150))  # incident-wide, Acme's
    assert "environ 40 (estimation)" in french.text() and "12 (nombre exact)" in french.text()


def test_an_incident_wide_figure_appears_only_once_a_manager_marks_it_shareable(
    declared, manager, responder, two_customers
):
    german, _french = two_customers
    with pytest.raises(ActionForbidden):
        incident_services.incident_update(
            incident=declared, actor=responder, changes={"incident_figures_shareable": True}
        )
    draft = notice_draft(incident=declared, actor=manager, kind="initial")
    assert "240" not in notice_preview(notice=draft, language="en", customer=german).text

    incident_services.incident_update(
        incident=declared, actor=manager, changes={"incident_figures_shareable": True}
    )

    shown = notice_preview(notice=draft, language="en", customer=german).text
    assert "Across the whole incident, all affected customers together: 240 (exact)" in shown
    assert "200 (exact)" in shown  # the customer's own figure stays first


def test_the_preview_is_addressed_to_the_chosen_customer(declared, manager, two_customers):
    german, french = two_customers
    draft = notice_draft(incident=declared, actor=manager, kind="initial")

    assert "Atelier Dupont SARL" in notice_preview(notice=draft, language="en", customer=french).text
    assert "about 40 (estimate)" in notice_preview(notice=draft, language="en", customer=french).text
    assert "200 (exact)" in notice_preview(notice=draft, language="en", customer=german).text


ART_33_3 = {  # msgid of each Art. 33(3) label
    "nature_of_breach": "Nature of the breach",  # (a)
    "data_categories": "Categories of personal data concerned",  # (a)
    "data_subject_categories": "Categories of data subjects concerned",  # (a)
    "data_subjects_affected": "Approximate number of your data subjects concerned",  # (a)
    "records_affected": "Approximate number of your personal data records concerned",  # (a)
    "likely_consequences": "Likely consequences of the breach",  # (c)
    "mitigation_measures": "Measures taken or proposed to address the breach",  # (d)
    "adverse_effect_measures": "Measures to mitigate its possible adverse effects",  # (d)
    "contact_point": "Contact point for questions",  # (b)
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_art_33_3_item_is_in_every_language_or_says_it_is_unknown(declared, manager, language):
    from django.utils import translation

    incident_services.incident_update(
        incident=declared,
        actor=manager,
        changes={
            "data_categories": ["identity", "health"],
            "likely_consequences": ["phishing"],
            "exposure_started_at": datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        },
    )
    draft = notice_draft(incident=declared, actor=manager, kind="initial")

    rendered = notice_preview(notice=draft, language=language)

    with translation.override(language):
        from django.utils.translation import gettext

        for msgid in ART_33_3.values():
            assert gettext(msgid) in rendered.text, (language, msgid)
            assert gettext(msgid) in html.unescape(rendered.html), (language, msgid)
        unknown = gettext("Not yet known; a follow-up notice will come.")
        # Unknown: data subject categories, product, sub-processor, both kinds of measures.
        assert rendered.text.count(unknown) == 5
        known_start = gettext("Exposed since %(start)s; the end is not yet known.") % {
            "start": {
                "en": "November 20, 2026, 10:00 AM UTC",
                "de": "20. November 2026, 10:00 UTC",
                "fr": "20 novembre 2026, 10:00 UTC",
                "es": "20 de noviembre de 2026, 10:00 UTC",
                "ja": "2026年11月20日 10:00 UTC",
            }[language]
        }
        assert known_start in rendered.text.replace("\u202f", " ")


def test_triage_carries_its_data_categories_and_consequences_into_the_facts_once(make_incident, responder):
    from triage.services import assessment_record

    incident = make_incident()
    assessment_record(
        incident=incident,
        actor=responder,
        scope="in_scope",
        scope_rationale="A payroll file reached a wrong recipient.",
        malicious="no",
        scenario="misdirected_communication",
        data_categories=["identity", "financial"],
        severity_inputs={"ease_of_identification": "maximum"},
        notification_facts={
            "breach_types": ["confidentiality"],
            "individuals": 1200,
            "likely_consequences": ["phishing", "financial_loss"],
        },
    )
    incident.refresh_from_db()
    assert incident.data_categories == ["financial", "identity"]
    assert incident.likely_consequences == ["financial_loss", "phishing"]
    assert (incident.data_subjects_affected, incident.data_subjects_affected_is_estimate) == (1200, True)

    incident_services.incident_update(
        incident=incident, actor=responder, changes={"data_categories": ["health"]}
    )
    assessment_record(
        incident=incident,
        actor=responder,
        scope="in_scope",
        scope_rationale="Reassessed.",
        malicious="no",
        scenario="misdirected_communication",
        data_categories=["identity"],
        severity_inputs={"ease_of_identification": "maximum"},
        notification_facts={"breach_types": ["confidentiality"]},
    )
    incident.refresh_from_db()
    assert incident.data_categories == ["health"]  # an edit is never overwritten


def test_the_consequences_are_triages_values():
    from triage.notification_assessment import Consequence

    assert set(LikelyConsequence.values) == {consequence.value for consequence in Consequence}


def test_a_per_language_text_overrides_the_default_in_that_language_only(smtp_server, declared, manager):
    translation_set(
        incident=declared,
        actor=manager,
        field="nature_of_breach",
        language="de",
        text="Ein Support-Postfach wurde von Unbekannten geöffnet.",
    )
    draft = notice_draft(incident=declared, actor=manager, kind="initial")
    german = notice_preview(notice=draft, language="de")
    french = notice_preview(notice=draft, language="fr")

    assert "Ein Support-Postfach wurde von Unbekannten geöffnet." in german.text
    assert "A support mailbox was accessed" not in german.text
    assert "nature_of_breach" not in german.untranslated and "nature_of_breach" in french.untranslated
    assert "A support mailbox was accessed" in french.text
    assert 'lang="en"' in french.html  # the English text is marked as such

    incident_services.incident_update(
        incident=declared, actor=manager, changes={"nature_of_breach": "Two support mailboxes were accessed."}
    )
    stale = notice_preview(
        notice=notice_draft(incident=declared, actor=manager, kind="initial"), language="de"
    )
    assert "Two support mailboxes were accessed." in stale.text  # an outdated translation is not used
    assert "nature_of_breach" in stale.untranslated


def test_approval_can_require_a_translation_for_each_language_sent(declared, manager, settings):
    settings.NOTICE_REQUIRE_TRANSLATIONS = True
    draft = notice_draft(incident=declared, actor=manager, kind="initial")

    with pytest.raises(ValidationError) as refusal:
        notice_approve(notice=draft, actor=manager)

    message = refusal.value.message_dict["translations"][0]
    assert "de (" in message and "fr (" in message and "Nature of the breach" in message
    assert Notice.objects.get(pk=draft.pk).status == "draft"
    for language, text in (("de", "Postfach geöffnet."), ("fr", "Boîte aux lettres ouverte.")):
        for field, value in (("nature_of_breach", text), ("contact_point", f"Team ({language})")):
            translation_set(incident=declared, actor=manager, field=field, language=language, text=value)
    assert notice_approve(notice=draft, actor=manager).status == "approved"


def test_updates_thread_with_the_initial_notice_number_from_one_and_show_old_and_new_values(
    smtp_server, declared, manager, responder, two_customers
):
    german, _french = two_customers
    approve(notice_draft(incident=declared, actor=manager, kind="initial"), manager)
    deliveries_send_due()
    initial_ids = {r.recipients[0]: r.message["Message-ID"] for r in smtp_server.received}
    smtp_server.received.clear()

    incident_services.incident_update(
        incident=declared, actor=manager, changes={"mitigation_measures": "Mailbox password reset."}
    )
    affected = AffectedCustomer.objects.get(incident=declared, customer=german)
    incident_services.affected_customer_update(
        affected=affected, actor=responder, changes={"records_affected": 210}
    )
    first_update = approve(notice_draft(incident=declared, actor=manager, kind="update"), manager)
    deliveries_send_due()
    updates = _by_address(smtp_server)
    smtp_server.received.clear()
    second_update = approve(notice_draft(incident=declared, actor=manager, kind="update"), manager)
    deliveries_send_due()

    assert (first_update.number, first_update.update_number, second_update.update_number) == (2, 1, 2)
    anna = updates["anna@acme.example"]
    assert anna.message["In-Reply-To"] == initial_ids["anna@acme.example"]
    assert anna.message["References"] == initial_ids["anna@acme.example"]
    assert anna.message["Subject"].startswith("Aktualisierung Nr. 1 ")
    text = anna.text()
    assert "Bisher: Noch nicht bekannt" not in text
    assert "Bisher: noch nicht bekannt" in text  # measures: unknown before, now known
    assert "Mailbox password reset." in text
    assert "Bisher: 200 (genaue Zahl)" in text and "210 (genaue Zahl)" in text  # its own figure
    claire = updates["claire@atelier.example"]
    assert claire.message["In-Reply-To"] == initial_ids["claire@atelier.example"]
    assert "200" not in claire.text() and "210" not in claire.text()
    second = _by_address(smtp_server)["anna@acme.example"]
    assert second.message["In-Reply-To"] == anna.message["Message-ID"]
    assert second.message["References"].split() == [
        initial_ids["anna@acme.example"],
        anna.message["Message-ID"],
    ]


def test_an_updates_previous_value_of_a_translated_text_is_what_the_customer_was_sent(
    smtp_server, declared, manager, two_customers
):
    """A free text given in German for the initial notice, then changed (its translation now
    outdated, so the new text goes out in the source language): the update's "previously"
    is the German words the customer received, not the source text (a new-user trial)."""
    incident_services.incident_update(
        incident=declared, actor=manager, changes={"mitigation_measures": "The clerk's access was revoked."}
    )
    translation_set(
        incident=declared,
        actor=manager,
        field="mitigation_measures",
        language="de",
        text="Der Zugang des Sachbearbeiters wurde gesperrt.",
    )
    approve(notice_draft(incident=declared, actor=manager, kind="initial"), manager)
    deliveries_send_due()
    assert (
        "Der Zugang des Sachbearbeiters wurde gesperrt."
        in _by_address(smtp_server)["anna@acme.example"].text()
    )
    smtp_server.received.clear()
    incident_services.incident_update(
        incident=declared,
        actor=manager,
        changes={"mitigation_measures": "Every clerk's access was reviewed."},
    )

    update = approve(notice_draft(incident=declared, actor=manager, kind="update"), manager)
    deliveries_send_due()

    german = _by_address(smtp_server)["anna@acme.example"].text()
    assert "Bisher: Der Zugang des Sachbearbeiters wurde gesperrt." in german
    assert "The clerk's access was revoked." not in german
    assert "Every clerk's access was reviewed." in german  # the new text, untranslated yet
    french = _by_address(smtp_server)["claire@atelier.example"].text()
    assert "The clerk's access was revoked." in french  # never translated: sent in English
    preview = notice_preview(notice=update, language="de", customer=two_customers[0]).text
    assert "Bisher: Der Zugang des Sachbearbeiters wurde gesperrt." in preview


def test_staff_see_which_of_a_customers_own_figures_an_update_changes(
    smtp_server, declared, manager, responder, two_customers, client
):
    """The preview (web table and API answer) marks a per-customer figure changed for the
    customer whose figure changed, not for the others (a new-user trial saw none marked)."""
    german, french = two_customers
    approve(notice_draft(incident=declared, actor=manager, kind="initial"), manager)
    affected = AffectedCustomer.objects.get(incident=declared, customer=german)
    incident_services.affected_customer_update(
        affected=affected, actor=responder, changes={"records_affected": 210}
    )
    update = notice_draft(incident=declared, actor=manager, kind="update")

    assert notice_preview(notice=update, language="de", customer=german).changed_figures == (
        "records_affected",
    )
    assert notice_preview(notice=update, language="fr", customer=french).changed_figures == ()
    client.force_login(manager)
    url = f"/incidents/{declared.pk}/notices/{update.number}/"
    for customer, expected in ((german, {"records_affected"}), (french, set())):
        rows = client.get(url, {"customer": customer.account_reference}).context["field_rows"]
        assert {row["name"] for row in rows if row["changed"] and row["per_customer"]} == expected
        answer = client.get(
            f"/api/incidents/{declared.pk}/notices/{update.number}/preview/",
            {"customer": customer.account_reference},
        ).json()
        assert set(answer["changed_figures"]) == expected


def test_salutations_follow_each_languages_grammar():
    from django.utils import translation

    with translation.override("fr"):
        assert salutation("Atelier Dupont", "fr") == "Aux administrateurs d'Atelier Dupont,"
        assert salutation("Dupont & Fils", "fr") == "Aux administrateurs de Dupont & Fils,"
    with translation.override("de"):
        assert salutation("Acme GmbH", "de").startswith("Sehr geehrte ")
    with translation.override("ja"):
        assert salutation("山田商事", "ja") == "山田商事 御中"


def test_headers_are_folded_and_trimmed_and_bodies_round_trip():
    subject = (
        "  Mitteilung über eine Verletzung des Schutzes personenbezogener Daten BD-2026-00001\r\nBcc: x "
    )
    header, body = build_body(
        subject=subject, text="Grüße\n" + "x" * 200 + "\n", html="<p>個人データ</p>" * 40
    )
    raw = (header.encode() + body).replace(b"\r\n", b"\n")

    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == " ".join(subject.split())  # one line, no leading space
    assert all(len(line) <= 78 for line in (header.encode() + body).split(b"\r\n"))
    text, html_part = (part for part in message.walk() if part.get_content_maintype() == "text")
    assert text.get_content() == "Grüße\n" + "x" * 200 + "\n"
    assert html_part["Content-Transfer-Encoding"] == "base64" and "個人データ" in html_part.get_content()
    assert fold_header(
        "Subject", "[Breachdesk] 48 hours left: BD-2026-00001 notice to Acme Logistik GmbH"
    ).startswith("Subject: [Breachdesk]")


def test_an_escalation_subject_does_not_start_with_a_space(smtp_server, declared):
    from notifications.models import Escalation
    from notifications.sender import outbox_send_due
    from notifications.services import escalation_email, escalation_raise

    clock = declared.clocks.order_by("id").first()
    escalation = escalation_raise(clock=clock, threshold="48h", notify=False)
    assert escalation is not None
    Escalation.objects.filter(pk=escalation.pk).update(recipients=["owner@breachdesk.test"])

    # Queued in the outbox (once, however often asked), then sent by the outbox sender.
    assert escalation_email(escalation_id=escalation.pk) == 1
    assert escalation_email(escalation_id=escalation.pk) == 0
    assert outbox_send_due().sent == 1
    [received] = smtp_server.received
    raw_subject = received.raw.split(b"\r\nSubject:", 1)[1].split(b"\r\n", 1)[0]
    assert not raw_subject.startswith(b" \r\n")  # not folded right after the colon
    subject = received.message["Subject"]
    assert subject == subject.strip() and subject.startswith("[Breachdesk] 48 hours left")


def test_approval_answers_at_once_and_a_worker_creates_the_deliveries_resumably(
    smtp_server, declared, manager, settings
):
    settings.NOTICE_CREATE_CHUNK_CUSTOMERS = 1
    notice = notice_approve(
        notice=notice_draft(incident=declared, actor=manager, kind="initial"), actor=manager
    )

    assert (notice.status, notice.delivery_creation) == ("approved", "pending")
    assert Delivery.objects.count() == 0 and NoticeRecipient.objects.filter(notice=notice).count() == 2

    first = notice_deliveries_create(notice_id=notice.pk, max_chunks=1)  # then the worker is killed
    assert (first.customers, first.deliveries, first.done) == (1, 1, False)
    scan = deadlines_scan(now=declared.clocks.first().starts_at + timedelta(minutes=1))
    assert scan.notices_awaiting_deliveries == [notice.pk]  # the scanner queues another worker

    rest = notice_deliveries_create(notice_id=notice.pk)
    again = notice_deliveries_create(notice_id=notice.pk)  # a duplicate message: harmless

    assert (rest.customers, rest.deliveries, rest.done) == (1, 1, True)
    assert (again.customers, again.deliveries, again.done) == (0, 0, True)
    notice.refresh_from_db()
    assert notice.delivery_creation == "done" and notice.deliveries_created_at is not None
    assert Delivery.objects.filter(notice=notice).count() == 2
    assert NoticeMessage.objects.filter(notice=notice).count() == 2  # one per (customer, language)
    assert deliveries_send_due().sent == 2
    assert run_delivery_worker() == 0
    declared.refresh_from_db()
    assert declared.state == "notified"  # clocks met by the relay's acceptance, as before
