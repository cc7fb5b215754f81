"""Importing VERIS records: the real VCDB sample, bad files, idempotency, the audit trail, and the
pure mapping of small hand-written records."""

from __future__ import annotations

import json
import shutil
from datetime import date
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from incidents.audit import verify_chain
from incidents.models import AuditEvent, Incident, Supplier
from incidents.veris import (
    DEFAULT_DETECTION_SOURCE,
    TITLE_MAX_LENGTH,
    VerisRecordError,
    data_categories_from_record,
    detection_source_from_record,
    malicious_from_record,
    map_veris_record,
    scenario_from_record,
)
from tests.conftest import shared_data_dir, skip_or_fail

REPOSITORY = Path(__file__).resolve().parents[2]
SHIPPED_SAMPLE = REPOSITORY / "incidents" / "fixtures" / "vcdb"
SHARED_SAMPLE = shared_data_dir() / "vcdb"
# The shared copy when it sits beside the checkout; otherwise the byte-identical shipped copy.
SAMPLE = SHARED_SAMPLE if SHARED_SAMPLE.is_dir() else SHIPPED_SAMPLE
TEST_DATA = REPOSITORY / "tests" / "data" / "veris"


def sample_files() -> list[Path]:
    return sorted(path for path in SAMPLE.iterdir() if path.suffix.lower() == ".json")


def run_import(*paths: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_veris", *[str(path) for path in paths], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def incident_for(file_name: str) -> Incident:
    record = json.loads((SAMPLE / file_name).read_text(encoding="utf-8"))
    return Incident.objects.get(external_reference=record["incident_id"])


# --- The real sample ------------------------------------------------------------------------


def test_it_imports_the_whole_real_sample_as_detected_incidents(db):
    out, err = run_import(SAMPLE)

    assert "32 imported, 0 already present, 0 failed" in out
    assert err == ""
    records = [json.loads(path.read_text(encoding="utf-8")) for path in sample_files()]
    assert len(records) == 32
    incidents = Incident.objects.all()
    assert incidents.count() == 32
    assert set(incidents.values_list("state", flat=True)) == {"detected"}
    assert {i.external_reference for i in incidents} == {r["incident_id"] for r in records}
    by_reference = {r["incident_id"]: r for r in records}
    for incident in incidents:
        assert incident.source_record == by_reference[incident.external_reference]
        assert incident.reference is not None and incident.reference.startswith("BD-")


def test_it_takes_files_ending_in_upper_case_json_from_a_folder(db, tmp_path):
    upper = [path for path in sample_files() if path.suffix == ".JSON"]
    assert upper, "the sample has files ending in .JSON"
    for path in upper:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "notes.txt").write_text("not a record")

    out, _ = run_import(tmp_path)

    assert f"{len(upper)} imported, 0 already present, 0 failed" in out
    assert Incident.objects.count() == len(upper)


def test_it_imports_nothing_new_on_a_second_run(db):
    run_import(SAMPLE)

    out, err = run_import(SAMPLE)

    assert "0 imported, 32 already present, 0 failed" in out
    assert err == ""
    assert Incident.objects.count() == 32
    assert AuditEvent.objects.count() == 32


def test_the_shipped_sample_is_a_byte_for_byte_copy_of_the_shared_one():
    if not SHARED_SAMPLE.is_dir():
        skip_or_fail(f"no shared sample at {SHARED_SAMPLE} to compare with")
    shared = {p.name: p.read_bytes() for p in SHARED_SAMPLE.iterdir() if p.suffix.lower() == ".json"}
    shipped = {p.name: p.read_bytes() for p in SHIPPED_SAMPLE.iterdir() if p.suffix.lower() == ".json"}
    assert len(shared) == 32
    assert shipped == shared


# --- Bad input ------------------------------------------------------------------------------


def test_it_reports_each_bad_file_by_name_and_still_imports_the_good_ones(db, tmp_path):
    good = sample_files()[:2]
    for path in good + sorted(TEST_DATA.iterdir()):
        shutil.copy(path, tmp_path / path.name)
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError, match="3 of 5 files failed"):
        call_command("import_veris", str(tmp_path), stdout=out, stderr=err)

    errors = err.getvalue().splitlines()
    assert len(errors) == 3
    assert any("malformed.json: invalid JSON" in line and "line 3" in line for line in errors)
    assert any("no_incident_id.JSON: no incident_id" in line for line in errors)
    assert any("not_an_object.json: not a JSON object (found an array)" in line for line in errors)
    assert "2 imported, 0 already present, 3 failed" in out.getvalue()
    assert Incident.objects.count() == 2
    assert not Incident.objects.filter(external_reference="11111111-2222-3333-4444-555555555555").exists()
    assert not Incident.objects.filter(summary="A record that lost its identifier.").exists()


def test_it_refuses_a_path_that_does_not_exist_before_importing_anything(db, tmp_path):
    missing = tmp_path / "no-such-folder"

    with pytest.raises(CommandError) as raised:
        run_import(SAMPLE, missing)

    assert str(raised.value) == f"{missing}: no such file or folder"
    assert Incident.objects.count() == 0


def test_it_refuses_a_folder_without_json_files(db, tmp_path):
    with pytest.raises(CommandError, match=r"No \.json files"):
        run_import(tmp_path)


# --- Mapping of real records ----------------------------------------------------------------

REAL_RECORD_EXPECTATIONS = {
    # Sutter Medical Foundation: data_total (943,434) disagrees with the Medical amount
    # (4,243,434, "more than 4 million patients" in the summary): the larger is an estimate.
    "002599D4-A872-433B-9980-BD9F257B283F.json": {
        "occurred_on": date(2011, 12, 8),
        "occurred_on_precision": "day",
        "records_affected": 4_243_434,
        "records_affected_is_estimate": True,
        "data_categories": ["health"],
        "malicious": "yes",
        "scenario": "lost_or_stolen_device",
        "detection_source": "external_report",
    },
    # A misdelivered prescription; data variety Unknown, so the categories stay unknown.
    "00163384-B4D7-46D5-9E6F-543DFB00F598.json": {
        "occurred_on": date(2014, 2, 3),
        "occurred_on_precision": "day",
        "records_affected": 87,
        "records_affected_is_estimate": False,
        "data_categories": None,
        "malicious": "no",
        "scenario": "misdirected_communication",
        "detection_source": "external_report",
    },
    # An email attachment sent by mistake, reported by a customer.
    "00E99EE9-817C-42A3-A352-4AD8F8C2D2A4.json": {
        "occurred_on": date(2015, 12, 4),
        "occurred_on_precision": "day",
        "records_affected": 1100,
        "records_affected_is_estimate": False,
        "data_categories": ["identity", "health"],
        "malicious": "no",
        "scenario": "misdirected_communication",
        "detection_source": "customer_report",
    },
    # Month only; Internal and Other data of nobody in particular: unknown categories.
    "002FCB44-829E-405C-84D9-E685D7590FBC.json": {
        "occurred_on": date(2016, 6, 1),
        "occurred_on_precision": "month",
        "records_affected": None,
        "records_affected_is_estimate": False,
        "data_categories": None,
        "malicious": "yes",
        "scenario": "unauthorised_access",
        "detection_source": "external_report",
    },
    # Year only; a stolen laptop reported by the employee.
    "0008DADB-E83D-4278-A19A-CEE01610CF43.json": {
        "occurred_on": date(2014, 1, 1),
        "occurred_on_precision": "year",
        "records_affected": None,
        "data_categories": ["identity"],
        "malicious": "yes",
        "scenario": "lost_or_stolen_device",
        "detection_source": "staff_escalation",
    },
    # An insider leak of internal data only (no personal data), found by log review.
    "0068196B-AE14-4568-B7ED-6AB008B5906A.json": {
        "occurred_on": date(2016, 10, 14),
        "occurred_on_precision": "day",
        "data_categories": [],
        "malicious": "yes",
        "scenario": "malicious_insider",
        "detection_source": "automated_alert",
    },
    # Ransomware.
    "00e94a74-582a-4b95-a458-7197f140ddb0.json": {
        "records_affected": 17214,
        "records_affected_is_estimate": False,
        "data_categories": ["health"],
        "malicious": "yes",
        "scenario": "malware_or_ransomware",
    },
    # Schema 1.4.0, "Sensitive Personal" data, an open database found by a researcher.
    "01034482-f586-412a-9127-1d1354a9f22c.JSON": {
        "occurred_on": date(2024, 8, 1),
        "occurred_on_precision": "month",
        "records_affected": 103_316_633,
        "data_categories": ["identity", "special_category"],
        "malicious": "no",
        "scenario": "other",
        "detection_source": "external_report",
    },
}


@pytest.mark.parametrize("file_name", sorted(REAL_RECORD_EXPECTATIONS))
def test_it_maps_real_records(db, file_name):
    run_import(SAMPLE / file_name)

    incident = incident_for(file_name)
    actual = {name: getattr(incident, name) for name in REAL_RECORD_EXPECTATIONS[file_name]}
    assert actual == REAL_RECORD_EXPECTATIONS[file_name]


def test_it_records_a_partner_actor_as_a_sub_processor(db):
    run_import(SAMPLE / "00286a56-178d-410d-98f0-d4e7fbe407d8.json")

    incident = incident_for("00286a56-178d-410d-98f0-d4e7fbe407d8.json")
    supplier = Supplier.objects.get()
    assert incident.sub_processor == supplier
    assert supplier.name == f"Partner named in VERIS record {incident.external_reference}"
    assert supplier.country == "US"
    assert incident.scenario == "supplier_breach"
    assert "does not name the partner" in incident.sub_processor_details
    assert "Country: US." in incident.sub_processor_details
    assert incident.records_affected == 779 and not incident.records_affected_is_estimate


def test_it_uses_the_victim_when_a_record_has_no_summary(db):
    run_import(SAMPLE / "005C42A3-3FE8-47B5-866B-AFBB5E3F5B95.json")

    incident = incident_for("005C42A3-3FE8-47B5-866B-AFBB5E3F5B95.json")
    assert incident.title == "VERIS incident at Blue Cross and Blue Shield of Rhode Island"
    assert incident.summary == ""


def test_it_writes_the_created_event_of_the_audit_trail(db):
    run_import(SAMPLE / "002599D4-A872-433B-9980-BD9F257B283F.json")

    incident = incident_for("002599D4-A872-433B-9980-BD9F257B283F.json")
    events = list(incident.audit_events.all())
    assert [event.verb for event in events] == ["created"]
    created = events[0]
    assert created.actor is None and created.actor_username == ""
    assert created.to_state == "detected"
    assert created.data["fields"]["records_affected"] == 4_243_434
    assert created.data["import"]["file"] == "002599D4-A872-433B-9980-BD9F257B283F.json"
    assert any("943434" in note for note in created.data["import"]["notes"])
    assert verify_chain(incident_ids=[incident.pk]) == []


# --- The pure mapping -----------------------------------------------------------------------


def record(**parts):
    return {"incident_id": "test-record-1", **parts}


def test_it_records_a_date_without_month_as_the_year_only():
    mapped = map_veris_record(record(timeline={"incident": {"year": 2019, "day": 14}}))

    assert mapped.fields["occurred_on"] == date(2019, 1, 1)
    assert mapped.fields["occurred_on_precision"] == "year"


def test_it_records_a_date_without_day_as_the_month_only():
    mapped = map_veris_record(record(timeline={"incident": {"year": 2019, "month": 7}}))

    assert mapped.fields["occurred_on"] == date(2019, 7, 1)
    assert mapped.fields["occurred_on_precision"] == "month"


def test_it_never_invents_a_day_that_does_not_exist():
    mapped = map_veris_record(record(timeline={"incident": {"year": 2023, "month": 2, "day": 30}}))

    assert mapped.fields["occurred_on"] == date(2023, 2, 1)
    assert mapped.fields["occurred_on_precision"] == "month"
    assert any("30" in note for note in mapped.notes)


def test_it_leaves_the_date_unknown_without_a_year():
    mapped = map_veris_record(record(timeline={"incident": {"month": 5}}))

    assert mapped.fields["occurred_on"] is None
    assert mapped.fields["occurred_on_precision"] == ""


def test_it_keeps_an_exact_day():
    mapped = map_veris_record(record(timeline={"incident": {"year": 2018, "month": 5, "day": 19}}))

    assert (mapped.fields["occurred_on"], mapped.fields["occurred_on_precision"]) == (
        date(2018, 5, 19),
        "day",
    )


def data(*entries, **extra):
    return {"confidentiality": {"data": list(entries), **extra}}


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        (data({"variety": "Unknown"}), None),
        ({}, None),
        (data(), None),
        (data({"variety": "Internal"}, {"variety": "Secrets"}, {"variety": "System"}), []),
        (data({"variety": "Classified"}, {"variety": "Copyrighted"}), []),
        (data({"variety": "Unknown"}, {"variety": "Personal"}), ["identity"]),
        (
            data(
                {"variety": "Payment"},
                {"variety": "Bank"},
                {"variety": "Credentials"},
                {"variety": "Medical"},
            ),
            ["financial", "payment_card", "credentials", "health"],
        ),
        (data({"variety": "Other"}, data_victim=["Customer"]), ["other"]),
        (data({"variety": "Other"}), None),
        (data({"variety": "Internal"}, {"variety": "Unknown"}), None),
        (data({"variety": "Sensitive Personal"}), ["special_category"]),
    ],
)
def test_it_maps_data_varieties_to_categories_keeping_unknown_unknown(attribute, expected):
    assert data_categories_from_record(record(attribute=attribute)) == expected


def test_it_takes_data_total_as_an_exact_count():
    mapped = map_veris_record(record(attribute=data({"variety": "Personal", "amount": 40}, data_total=100)))

    assert (mapped.fields["records_affected"], mapped.fields["records_affected_is_estimate"]) == (
        100,
        False,
    )


def test_it_sums_per_variety_amounts_as_an_estimate_without_a_total():
    mapped = map_veris_record(
        record(attribute=data({"variety": "Personal", "amount": 40}, {"variety": "Medical", "amount": 60}))
    )

    assert (mapped.fields["records_affected"], mapped.fields["records_affected_is_estimate"]) == (
        100,
        True,
    )


def test_it_keeps_the_larger_figure_as_an_estimate_when_the_total_disagrees():
    mapped = map_veris_record(record(attribute=data({"variety": "Medical", "amount": 5000}, data_total=50)))

    assert (mapped.fields["records_affected"], mapped.fields["records_affected_is_estimate"]) == (
        5000,
        True,
    )
    assert mapped.notes


def test_it_leaves_records_affected_unknown_without_figures():
    mapped = map_veris_record(record(attribute=data({"variety": "Personal"}, data_total="Unknown")))

    assert (mapped.fields["records_affected"], mapped.fields["records_affected_is_estimate"]) == (
        None,
        False,
    )


@pytest.mark.parametrize(
    ("actor", "action", "expected"),
    [
        (
            {"external": {"variety": ["Organized crime"], "motive": ["Financial"]}},
            {"hacking": {}},
            "yes",
        ),
        ({"external": {"variety": ["Unknown"], "motive": ["Unknown"]}}, {"physical": {}}, "yes"),
        ({"internal": {"motive": ["Grudge"]}}, {"misuse": {}}, "yes"),
        ({"partner": {"motive": ["Financial"]}}, {"misuse": {}}, "yes"),
        ({"internal": {"motive": ["NA"]}}, {"error": {"variety": ["Misdelivery"]}}, "no"),
        ({"internal": {"motive": ["Unknown"]}}, {"error": {"variety": ["Loss"]}}, "no"),
        ({"unknown": {}}, {"error": {"variety": ["Unknown"]}}, "no"),
        ({"internal": {"motive": ["Unknown"]}}, {"misuse": {"variety": ["Privilege abuse"]}}, None),
        ({"unknown": {}}, {"unknown": {}}, None),
        ({}, {}, None),
    ],
)
def test_it_decides_malicious_from_actor_and_motive(actor, action, expected):
    assert malicious_from_record(record(actor=actor, action=action)) == expected


@pytest.mark.parametrize(
    ("action", "actor", "expected"),
    [
        ({"error": {"variety": ["Misdelivery"]}}, {"internal": {}}, "misdirected_communication"),
        ({"error": {"variety": ["Publishing error"]}}, {"internal": {}}, "accidental_publication"),
        ({"error": {"variety": ["Loss"]}}, {"internal": {}}, "lost_or_stolen_device"),
        ({"physical": {"variety": ["Theft"]}}, {"external": {}}, "lost_or_stolen_device"),
        ({"misuse": {"variety": ["Privilege abuse"]}}, {"internal": {}}, "malicious_insider"),
        ({"hacking": {"variety": ["SQLi"]}}, {"external": {}}, "unauthorised_access"),
        (
            {"hacking": {}, "malware": {"variety": ["Ransomware"]}},
            {"external": {}},
            "malware_or_ransomware",
        ),
        ({"error": {"variety": ["Loss"]}}, {"partner": {}}, "supplier_breach"),
        ({"error": {"variety": ["Misconfiguration"]}}, {"internal": {}}, "other"),
        ({"social": {"variety": ["Phishing"]}}, {"external": {}}, "other"),
        ({"unknown": {}}, {"unknown": {}}, None),
        ({}, {}, None),
    ],
)
def test_it_derives_the_scenario_from_the_action(action, actor, expected):
    assert scenario_from_record(record(action=action, actor=actor)) == expected


@pytest.mark.parametrize(
    ("discovery_method", "expected"),
    [
        ({"external": {"variety": ["Security researcher"]}}, "external_report"),
        ({"external": {"variety": ["Actor disclosure"]}}, "external_report"),
        ({"external": {"variety": ["Customer"]}}, "customer_report"),
        ({"internal": {"variety": ["Reported by employee"]}}, "staff_escalation"),
        ({"internal": {"variety": ["Log review"]}}, "automated_alert"),
        ({"internal": {"variety": ["NIDS"]}}, "automated_alert"),
        ({"internal": {"variety": ["Unknown"]}}, "staff_escalation"),
        ({"partner": {"variety": ["Monitoring service"]}}, "external_report"),
        ("Int - reported by employee", "staff_escalation"),
        ({"unknown": True}, DEFAULT_DETECTION_SOURCE),
        (None, DEFAULT_DETECTION_SOURCE),
    ],
)
def test_it_derives_the_detection_source_from_the_discovery_method(discovery_method, expected):
    assert detection_source_from_record(record(discovery_method=discovery_method)) == expected
    assert DEFAULT_DETECTION_SOURCE == "external_report"


def test_it_shortens_a_long_summary_into_a_title_at_a_word():
    summary = "An unencrypted backup tape " + "with many customer records " * 10 + "was lost. More text."

    title = map_veris_record(record(summary=summary)).fields["title"]

    assert len(title) <= TITLE_MAX_LENGTH
    assert title.endswith("…")
    assert summary.startswith(title[:-1])
    assert title[-2] != " "


def test_it_uses_the_first_sentence_of_a_summary_as_the_title():
    fields = map_veris_record(record(summary="phishing email hit payroll.  Then more happened.")).fields

    assert fields["title"] == "Phishing email hit payroll"
    assert fields["summary"] == "phishing email hit payroll.  Then more happened."


def test_it_falls_back_to_the_record_id_for_a_title():
    assert map_veris_record(record(victim={"victim_id": "Unknown"})).fields["title"] == (
        "VERIS incident test-record-1"
    )


@pytest.mark.parametrize(
    ("bad_record", "reason"),
    [
        ([{"incident_id": "x"}], "not a JSON object"),
        ({"summary": "no id"}, "no incident_id"),
        ({"incident_id": "   "}, "no incident_id"),
        ({"incident_id": 42}, "no incident_id"),
        ({"incident_id": "x" * 101}, "longer than 100"),
    ],
)
def test_it_refuses_records_it_cannot_identify(bad_record, reason):
    with pytest.raises(VerisRecordError, match=reason):
        map_veris_record(bad_record)
