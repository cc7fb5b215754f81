"""The per-row text the incident page and the board compute in Python instead of template
filters: the same links as ``reverse``, the same words, and escaped markup."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse

from incidents import services
from incidents.models import AuditEvent
from incidents.reversing import url_maker
from incidents.templatetags.breachdesk import datalist_options, key_value_items
from incidents.views import AffectedCustomerRow, AuditEventRow


def test_url_maker_gives_what_reverse_gives_for_every_value():
    detail = url_maker("incidents:incident_detail")
    remove = url_maker("incidents:affected_customer_remove", 42)
    for pk in (1, 7, 10, 99, 123456789):
        assert detail(pk) == reverse("incidents:incident_detail", args=[pk])
        assert remove(pk) == reverse("incidents:affected_customer_remove", args=[42, pk])


def test_url_maker_refuses_a_pattern_that_does_not_take_the_arguments_at_once():
    with pytest.raises(NoReverseMatch):
        url_maker("incidents:incident_detail", 1)


def test_the_suggestion_and_detail_filters_escape_what_they_are_given():
    assert datalist_options([("<b>", 'A "quoted" & name')]) == (
        '<option value="&lt;b&gt;">A &quot;quoted&quot; &amp; name</option>'
    )
    assert key_value_items([("Title", "<script>x</script>")]) == (
        '<li><span class="key">Title</span>: &lt;script&gt;x&lt;/script&gt;</li>'
    )


def test_an_audit_row_says_who_did_what_in_words():
    event = AuditEvent(
        sequence=3,
        occurred_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        actor_username="",
        verb="post_mortem_started",
        from_state="notified",
        to_state="post_mortem",
        data={"changes": {"severity": [None, "high"]}},
    )
    row = AuditEventRow.of(event)
    assert row.when == "2026-03-01 09:30:00 UTC"
    assert row.summary == "system: Post-mortem started (Notified → Post-mortem)"
    assert row.states == "notified → post_mortem"
    assert row.items == [("Severity", "— → high")]
    quiet = AuditEventRow.of(AuditEvent(occurred_at=event.occurred_at, actor_username="ana", verb="updated"))
    assert (quiet.summary, quiet.states) == ("ana: Updated", "")


def test_an_affected_customers_figures_say_when_they_are_estimates_or_unknown():
    assert AffectedCustomerRow.figure(None, False) == "—"
    assert AffectedCustomerRow.figure(120, True) == "120 (estimate)"
    assert AffectedCustomerRow.figure(0, False) == "0"


def test_the_incident_page_escapes_row_text_and_links_each_customer(manager, make_incident, customer):
    customer.name = '<img src=x onerror="alert(1)">'
    customer.save()
    incident = make_incident()
    services.affected_customer_add(incident=incident, customer=customer, actor=manager, records_affected=5)
    client = Client()
    client.force_login(manager)
    page = client.get(reverse("incidents:incident_detail", args=[incident.pk])).content.decode()
    assert '<img src=x onerror="alert(1)">' not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    remove = reverse("incidents:affected_customer_remove", args=[incident.pk, customer.pk])
    assert f'action="{remove}"' in page
    assert "<td>5</td>" in page
