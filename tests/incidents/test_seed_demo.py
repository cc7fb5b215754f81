"""The demo seed: users per group with stored generated passwords, customers in five languages,
the VCDB sample; idempotent."""

from __future__ import annotations

import re
import stat
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client

from incidents.models import Contact, Customer, Incident, Product

DEMO_GROUPS = {"responder": "responder", "manager": "incident_manager", "auditor": "auditor"}


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    # Real password hashing costs about a second per user; these tests check logins, not hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return tmp_path


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def printed_logins(output: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+(\w+)\s+(\S+)\s+\(group \w+\)$", output, flags=re.MULTILINE))


def test_it_creates_one_user_per_group_and_prints_their_passwords(db, var_dir):
    output = seed()

    logins = printed_logins(output)
    assert set(logins) == set(DEMO_GROUPS)
    for username, group in DEMO_GROUPS.items():
        user = get_user_model().objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [group]
        assert user.email == f"{username}@breachdesk.test"
        assert user.check_password(logins[username])
    assert len(set(logins.values())) == 3


def test_it_keeps_the_generated_logins_in_a_private_file(db, var_dir):
    logins = printed_logins(seed())

    path = var_dir / "demo-credentials.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    for username, password in logins.items():
        assert f"{username} {password}" in text


def test_a_user_can_log_in_with_a_printed_password(db, var_dir):
    logins = printed_logins(seed())

    # django-axes checks every login against its lock-out, which needs the request.
    assert Client().login(request=HttpRequest(), username="manager", password=logins["manager"])
    assert not Client().login(request=HttpRequest(), username="manager", password="not-the-password")


def test_a_second_run_prints_the_same_logins_and_creates_nothing(db, var_dir):
    first = seed()
    counts = (
        get_user_model().objects.count(),
        Customer.objects.count(),
        Contact.objects.count(),
        Incident.objects.count(),
    )

    second = seed()

    assert printed_logins(second) == printed_logins(first)
    assert counts == (
        get_user_model().objects.count(),
        Customer.objects.count(),
        Contact.objects.count(),
        Incident.objects.count(),
    )
    assert "Users: 0 created." in second
    assert "Products: 0 created." in second
    assert "0 imported, 32 already present, 0 failed" in second
    user = get_user_model().objects.get(username="responder")
    assert user.check_password(printed_logins(first)["responder"])


def test_it_seeds_customers_with_contacts_in_five_languages_and_the_vcdb_sample(db, var_dir):
    output = seed()

    assert set(Contact.objects.values_list("language", flat=True)) == {"en", "de", "fr", "es", "ja"}
    assert set(Contact.objects.values_list("role", flat=True)) == {"administrative"}
    assert Customer.objects.count() == 6
    assert list(
        Customer.objects.filter(is_drill_customer=True).values_list("account_reference", flat=True)
    ) == ["DEMO-DRILL-001"]
    assert "Products: 3 created." in output
    assert Product.objects.count() == 3
    assert Incident.objects.filter(external_reference__isnull=False, is_drill=False).count() == 32
    assert "32 imported, 0 already present, 0 failed" in output
    # Two of them are declared for two demo customers each, so the board shows running clocks.
    declared = Incident.objects.filter(state="declared", is_drill=False)
    assert declared.count() == 2
    assert all(incident.clocks.filter(met_at=None).count() == 2 for incident in declared)
    assert Incident.objects.filter(state="detected").count() == 30
    assert "Declared 2 of the imported incidents after a recorded triage assessment" in output
    # Through the one triage path: each declared incident has an in-scope assessment, its
    # severity from that assessment, and each customer its own figures.
    for incident in declared:
        assessment = incident.assessments.get()
        assert assessment.scope == "in_scope"
        assert incident.severity == assessment.band
        # The triage fits the imported record: its own data categories, and its own summary
        # as the nature of the breach.
        if incident.data_categories:
            assert set((assessment.severity_inputs or {})["data_categories"]) == set(incident.data_categories)
        assert incident.nature_of_breach == (incident.summary.strip() or incident.title)
        figures = list(incident.affected_customers.values_list("records_affected", flat=True))
        assert None not in figures and len(set(figures)) == 2


def test_it_seeds_a_superuser_for_the_admin(db, var_dir, django_user_model):
    output = seed()

    printed = re.search(r"^\s+admin\s+(\S+)\s+\(superuser: /admin/\)$", output, flags=re.MULTILINE)
    assert printed is not None, output
    password = printed.group(1)
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)


def test_it_never_resets_the_password_of_an_existing_user_it_did_not_seed(db, var_dir, django_user_model):
    django_user_model.objects.create_user(username="auditor", password="chosen by a person")

    output = seed()

    assert "auditor" not in printed_logins(output)
    assert "(unchanged: not in the credentials file)" in output
    assert django_user_model.objects.get(username="auditor").check_password("chosen by a person")


def test_it_seeds_a_completed_drill_that_mailed_only_the_drill_customer(db, var_dir):
    from notifications.models import Delivery
    from postmortems.models import Drill

    output = seed()
    again = seed()

    drill = Drill.objects.select_related("incident").get()
    assert drill.completed_at is not None and drill.incident.is_drill and drill.incident.state == "closed"
    assert drill.time_to_declare is not None and drill.time_to_notify is not None
    assert set(
        Delivery.objects.filter(notice__incident=drill.incident).values_list("address", flat=True)
    ) == {"dana.drill@drill.example"}
    assert f"Drill: {drill.incident.reference} completed" in output
    assert "the demo drill exists already" in again
    assert Drill.objects.count() == 1


def test_the_demo_auditor_can_log_in(db, var_dir):
    from django.test import Client

    output = seed()
    password = printed_logins(output)["auditor"]

    client = Client()
    client.post("/accounts/login/", {"username": "auditor", "password": password})
    assert "_auth_user_id" in client.session
