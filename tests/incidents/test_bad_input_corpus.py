"""The bad-input corpus (issue 8): every case answers with its status and a message that says
what is wrong, and nothing in the database changed.

- CR/LF (and other line breaks) in every single-line field that reaches an email header, through
  the API and the web forms: incident titles and reporters, customer names and account
  references, contact names, product and supplier names, alert titles;
- case-variant duplicates (``demo-en-001`` next to ``DEMO-EN-001``, ``Olivia.Bennett@`` next to
  ``olivia.bennett@``) through the API, the forms and ``import_customers``;
- invalid codes: languages (``klingon``, ``zz-ZZ``) and countries (``ZZ``);
- a domain that cannot be encoded (IDNA 2008);
- invalid UTF-8 in form posts and form-encoded API bodies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from incidents import services
from incidents.models import (
    AuditEvent,
    Contact,
    Customer,
    CustomerAuditEvent,
    Incident,
    Product,
    Supplier,
)
from tests.conftest import errors, signed_alert_headers

BREAKS = ["Acme\r\nBcc: eve@evil.example", "Acme\nLtd", "Acme\rLtd", "Acme\u2028Ltd", "Acme\x00Ltd"]
SINGLE_LINE = "single line"


def db_state() -> dict[str, list]:
    """Everything the corpus could change, row by row."""
    return {
        "customers": list(Customer.objects.order_by("pk").values()),
        "contacts": list(Contact.objects.order_by("pk").values()),
        "incidents": list(Incident.objects.order_by("pk").values("pk", "title", "reported_by", "updated_at")),
        "products": list(Product.objects.order_by("pk").values()),
        "suppliers": list(Supplier.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values_list("pk", flat=True)),
        "customer_audit": list(CustomerAuditEvent.objects.order_by("pk").values_list("pk", flat=True)),
    }


@pytest.fixture
def api(superuser):
    """A superuser's API client (every route allowed) that answers 500s instead of raising."""
    client = APIClient()
    client.raise_request_exception = False
    client.force_login(superuser)
    return client


@pytest.fixture
def web(superuser):
    client = Client(raise_request_exception=False)
    client.force_login(superuser)
    return client


@pytest.fixture
def demo(db, superuser):
    """``DEMO-EN-001`` with the contact ``olivia.bennett@northwind.example``, and an incident."""
    customer = Customer.objects.create(name="Northwind Traders", account_reference="DEMO-EN-001")
    services.contact_create(
        customer=customer, actor=superuser, name="Olivia Bennett", email="olivia.bennett@northwind.example"
    )
    incident = services.incident_create(
        actor=superuser, fields={"title": "Misdirected payroll email", "detection_source": "staff_escalation"}
    )
    return customer, incident


# --- API: CR/LF in every field that reaches a header ----------------------------------------------


def _first_error(response, field: str) -> str:
    assert response.status_code == 400, response.content
    return " ".join(errors(response)[field])


@pytest.mark.parametrize("value", BREAKS)
@pytest.mark.parametrize("field", ["name", "account_reference"])
def test_it_refuses_a_line_break_in_a_customer_field_through_the_api(api, demo, field, value):
    before = db_state()
    body = {"name": "New Customer", "account_reference": "NEW-001", field: value}

    created = api.post("/api/customers/", body, format="json")
    changed = api.patch(f"/api/customers/{demo[0].pk}/", {field: value}, format="json")

    for response in (created, changed):
        message = _first_error(response, field)
        assert SINGLE_LINE in message or "Null characters are not allowed" in message
    assert db_state() == before


@pytest.mark.parametrize("value", BREAKS)
def test_it_refuses_a_line_break_in_a_contact_name_through_the_api(api, demo, value):
    customer, _incident = demo
    contact = Contact.objects.get(customer=customer)
    before = db_state()

    created = api.post(
        "/api/contacts/",
        {"customer": customer.pk, "name": value, "email": "new@northwind.example"},
        format="json",
    )
    changed = api.patch(f"/api/contacts/{contact.pk}/", {"name": value}, format="json")

    for response in (created, changed):
        message = _first_error(response, "name")
        assert SINGLE_LINE in message or "Null characters are not allowed" in message
    assert db_state() == before


@pytest.mark.parametrize("value", BREAKS)
@pytest.mark.parametrize("field", ["title", "reported_by", "external_reference"])
def test_it_refuses_a_line_break_in_an_incident_field_through_the_api(api, demo, field, value):
    _customer, incident = demo
    before = db_state()
    body = {"title": "Misdirected email", "detection_source": "staff_escalation", field: value}

    created = api.post("/api/incidents/", body, format="json")
    changed = api.patch(f"/api/incidents/{incident.pk}/", {field: value}, format="json")

    for response in (created, changed):
        if response is changed and field == "external_reference":
            assert response.status_code == 400  # read-only after creation: refused as such
            continue
        message = _first_error(response, field)
        assert SINGLE_LINE in message or "Null characters are not allowed" in message
    assert db_state() == before


def test_it_refuses_a_line_break_in_an_alert_title(db):
    from incidents.intake import alert_source_create
    from incidents.models import Alert

    source, secret = alert_source_create(name="EDR")
    body = json.dumps(
        {
            "dedupe_key": "host-1",
            "title": "Malware\r\nBcc: eve@evil.example",
            "detected_at": "2026-12-01T10:00:00Z",
        }
    ).encode()
    before = db_state()

    response = Client(raise_request_exception=False).post(
        "/api/intake/alerts/", body, content_type="application/json", **signed_alert_headers(secret, body)
    )

    assert SINGLE_LINE in _first_error(response, "title")
    assert db_state() == before and not Alert.objects.exists()


# --- Forms: CR/LF ---------------------------------------------------------------------------------


CUSTOMER_FORM = {
    "name": "New Customer",
    "account_reference": "NEW-001",
    "country": "DE",
    "preferred_language": "en",
    "notification_window_hours": "72",
}


@pytest.mark.parametrize("field", ["name", "account_reference"])
def test_it_refuses_a_line_break_in_a_customer_form(web, demo, field):
    from django.urls import reverse

    before = db_state()

    created = web.post(reverse("dashboard:customer_new"), {**CUSTOMER_FORM, field: "Acme\r\nLtd"})
    changed = web.post(
        reverse("dashboard:customer_edit", args=[demo[0].pk]),
        {**CUSTOMER_FORM, "account_reference": "DEMO-EN-001", field: "Acme\nLtd"},
    )

    for response in (created, changed):
        assert response.status_code == 400
        assert response.context["form"].errors[field] == [
            "This must be a single line: line breaks and control characters are not allowed."
        ]
    assert db_state() == before


def test_it_refuses_a_line_break_in_a_contact_form(web, demo):
    from django.urls import reverse

    customer, _incident = demo
    contact = Contact.objects.get(customer=customer)
    before = db_state()
    fields = {"contact-email": "new@northwind.example", "contact-role": "administrative"}

    created = web.post(
        reverse("dashboard:contact_new", args=[customer.pk]), {**fields, "contact-name": "A\r\nB"}
    )
    changed = web.post(
        reverse("dashboard:contact_edit", args=[customer.pk, contact.pk]),
        {**fields, "contact-email": contact.email, "contact-name": "A\nB", "contact-is_active": "on"},
    )

    for response in (created, changed):
        assert response.status_code == 400
        assert SINGLE_LINE in " ".join(response.context["form"].errors["name"])
    assert db_state() == before


@pytest.mark.parametrize("field", ["title", "reported_by"])
def test_it_refuses_a_line_break_in_the_incident_forms(web, demo, field):
    from django.urls import reverse

    _customer, incident = demo
    before = db_state()
    fields = {"title": "Misdirected email", "detection_source": "staff_escalation", field: "A\r\nB"}

    created = web.post(reverse("incidents:incident_new"), fields)

    assert created.status_code == 400
    assert SINGLE_LINE in " ".join(created.context["form"].errors[field])
    assert db_state() == before


def test_it_refuses_a_line_break_in_the_organisation_on_the_customer_report_page(db):
    from incidents.models import CustomerReport, OutgoingEmail

    before = db_state()

    response = Client(raise_request_exception=False).post(
        "/report/",
        {
            "organisation": "Acme\r\nBcc: eve@evil.example",
            "contact_email": "it-security@acme.example",
            "description": "Our portal showed another company's invoice.",
            "occurred_on": "2026-03-02",
        },
    )

    assert response.status_code == 400
    assert SINGLE_LINE in " ".join(response.context["form"].errors["organisation"])
    assert db_state() == before
    assert not CustomerReport.objects.exists() and not OutgoingEmail.objects.exists()


@pytest.mark.parametrize(("model", "path"), [(Product, "product"), (Supplier, "supplier")])
def test_it_refuses_a_line_break_in_product_and_supplier_names_in_the_admin(web, db, model, path):
    before = db_state()

    response = web.post(f"/admin/incidents/{path}/add/", {"name": "Mail\r\nHost", "country": "IE"})

    assert response.status_code == 200  # the admin re-shows its form with the errors
    assert SINGLE_LINE in " ".join(response.context["adminform"].form.errors["name"])
    assert db_state() == before


# --- Case-variant duplicates ---------------------------------------------------------------------


def test_it_refuses_a_case_variant_account_reference_through_the_api_and_the_form(api, web, demo):
    from django.urls import reverse

    before = db_state()

    response = api.post(
        "/api/customers/", {"name": "Again", "account_reference": "demo-en-001"}, format="json"
    )
    form = web.post(reverse("dashboard:customer_new"), {**CUSTOMER_FORM, "account_reference": "Demo-En-001"})

    assert response.status_code == 409
    assert "'DEMO-EN-001'; references are unique in any case" in " ".join(
        errors(response)["account_reference"]
    )
    assert form.status_code == 400
    assert form.context["form"].errors["account_reference"] == [
        "Another customer already has the account reference 'DEMO-EN-001'; account references are unique in any case."
    ]
    assert db_state() == before


def test_it_refuses_a_case_variant_contact_address_through_the_api_the_form_and_the_service(
    api, web, demo, superuser
):
    from django.core.exceptions import ValidationError
    from django.urls import reverse

    customer, _incident = demo
    before = db_state()

    response = api.post(
        "/api/contacts/",
        {"customer": customer.pk, "name": "Olivia", "email": "Olivia.Bennett@Northwind.example"},
        format="json",
    )
    form = web.post(
        reverse("dashboard:contact_new", args=[customer.pk]),
        {
            "contact-name": "Olivia",
            "contact-email": "OLIVIA.BENNETT@northwind.example",
            "contact-role": "administrative",
        },
    )
    with pytest.raises(ValidationError, match="already a contact of this customer"):
        services.contact_create(
            customer=customer, actor=superuser, name="Olivia", email="Olivia.Bennett@NORTHWIND.example"
        )

    assert response.status_code == 409
    assert "olivia.bennett@northwind.example is already a contact of this customer" in " ".join(
        errors(response)["email"]
    )
    assert form.status_code == 400
    assert "already a contact of this customer" in " ".join(form.context["form"].errors["email"])
    assert db_state() == before


def test_it_has_the_database_refuse_case_variant_duplicates_that_bypass_the_checks(demo):
    from django.db import IntegrityError, transaction

    customer, _incident = demo
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(name="Again", account_reference="demo-EN-001")
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(customer=customer, name="Olivia", email="OLIVIA.bennett@northwind.example")


# --- Invalid codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["klingon", "zz-ZZ", "xx"])
def test_it_refuses_a_language_we_do_not_write_notices_in(api, web, demo, code):
    from django.urls import reverse

    customer, _incident = demo
    before = db_state()

    customer_api = api.post(
        "/api/customers/",
        {"name": "K", "account_reference": "K-1", "preferred_language": code},
        format="json",
    )
    contact_api = api.post(
        "/api/contacts/",
        {"customer": customer.pk, "name": "K", "email": "k@northwind.example", "language": code},
        format="json",
    )
    form = web.post(reverse("dashboard:customer_new"), {**CUSTOMER_FORM, "preferred_language": code})

    assert f"{code!r} is not a language we write notices in" in _first_error(
        customer_api, "preferred_language"
    )
    assert "use one of en, de, fr, es, ja" in _first_error(contact_api, "language")
    assert form.status_code == 400 and "preferred_language" in form.context["form"].errors
    assert db_state() == before


@pytest.mark.parametrize("code", ["ZZ", "zz", "XX", "DEU", "D"])
def test_it_refuses_a_country_that_is_not_iso_3166(api, web, demo, code):
    from django.urls import reverse

    before = db_state()

    response = api.post(
        "/api/customers/", {"name": "Z", "account_reference": "Z-1", "country": code}, format="json"
    )
    form = web.post(reverse("dashboard:customer_new"), {**CUSTOMER_FORM, "country": code})
    supplier = web.post("/admin/incidents/supplier/add/", {"name": "Mail Host", "country": code})

    assert "is not an ISO 3166-1 alpha-2 country code" in _first_error(response, "country")
    assert form.status_code == 400 and form.context["form"].errors["country"]
    assert supplier.status_code == 200 and supplier.context["adminform"].form.errors["country"]
    assert db_state() == before


def test_it_accepts_a_real_country_and_language(api, db):
    response = api.post(
        "/api/customers/",
        {"name": "Ok", "account_reference": "OK-1", "country": "FR", "preferred_language": "fr"},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert Customer.objects.filter(account_reference="OK-1", country="FR", preferred_language="fr").exists()


# --- Addresses --------------------------------------------------------------------------------------


def test_it_refuses_a_domain_that_cannot_be_encoded_with_the_reason(api, web, demo):
    from django.urls import reverse

    customer, _incident = demo
    before = db_state()

    response = api.post(
        "/api/contacts/",
        {"customer": customer.pk, "name": "X", "email": "x@bad_faß.example"},
        format="json",
    )
    form = web.post(
        reverse("dashboard:contact_new", args=[customer.pk]),
        {"contact-name": "X", "contact-email": "x@-faß.example", "contact-role": "administrative"},
    )

    assert "cannot be encoded for email (IDNA 2008)" in _first_error(response, "email")
    assert form.status_code == 400
    assert "cannot be encoded for email (IDNA 2008)" in " ".join(form.context["form"].errors["email"])
    assert db_state() == before


def test_it_stores_an_international_domain_encoded_through_the_api(api, demo):
    customer, _incident = demo

    response = api.post(
        "/api/contacts/", {"customer": customer.pk, "name": "Info", "email": "info@faß.de"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["email"] == "info@xn--fa-hia.de"


# --- Invalid UTF-8 ------------------------------------------------------------------------------------


def test_it_refuses_a_form_post_that_is_not_utf8(web, demo):
    from django.urls import reverse

    before = db_state()

    for body in (
        b"name=Caf\xe9&account_reference=NEW-001&preferred_language=en&notification_window_hours=72",
        b"name=Caf%E9&account_reference=NEW-001&preferred_language=en&notification_window_hours=72",
    ):
        response = web.generic(
            "POST", reverse("dashboard:customer_new"), body, content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 400
        assert response.content.decode() == "The form was not sent as UTF-8; nothing was stored."
    assert db_state() == before


def test_it_refuses_a_form_encoded_or_json_api_body_that_is_not_utf8(api, demo):
    before = db_state()

    for body in (b"name=Caf\xe9&account_reference=NEW-001", b"name=Caf%E9&account_reference=NEW-001"):
        form = api.generic("POST", "/api/customers/", body, content_type="application/x-www-form-urlencoded")
        # The API reads JSON only: a form body, UTF-8 or not, is refused as such.
        assert form.status_code == 415
        assert form["Content-Type"].startswith("application/problem+json")
        assert "Unsupported media type" in form.json()["detail"]
    json_body = api.generic(
        "POST",
        "/api/customers/",
        b'{"name": "Caf\xe9", "account_reference": "NEW-001"}',
        content_type="application/json",
    )
    assert json_body.status_code == 400
    assert json_body["Content-Type"].startswith("application/problem+json")
    assert "'utf-8' codec can't decode byte 0xe9" in json_body.json()["detail"]
    assert db_state() == before


def test_it_still_takes_a_utf8_form_post(web, db):
    from django.urls import reverse

    response = web.post(reverse("dashboard:customer_new"), {**CUSTOMER_FORM, "name": "Café Crème"})

    assert response.status_code == 302
    assert Customer.objects.get(account_reference="NEW-001").name == "Café Crème"


# --- import_customers -----------------------------------------------------------------------------------

HEADER = (
    "account_reference,customer_name,country,preferred_language,notification_window_hours,"
    "contact_name,contact_email,contact_language,contact_role\n"
)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            "demo-en-001,Northwind,DE,en,72,Olivia,o@northwind.example,,\n",
            "differs only in case from the existing customer 'DEMO-EN-001'",
        ),
        ('NEW-1,"Acme\r\nLtd",DE,en,72,Olivia,o@acme.example,,\n', "customer_name must be a single line"),
        ('NEW-1,Acme,DE,en,72,"Olivia\nB",o@acme.example,,\n', "contact_name must be a single line"),
        (
            "NEW-1,Acme,ZZ,en,72,Olivia,o@acme.example,,\n",
            "country 'ZZ' is not an ISO 3166-1 alpha-2 country code",
        ),
        ("NEW-1,Acme,DE,klingon,72,Olivia,o@acme.example,,\n", "preferred_language 'klingon' is not one of"),
        ("NEW-1,Acme,DE,en,72,Olivia,o@acme.example,zz-ZZ,\n", "contact_language 'zz-ZZ' is not one of"),
        ("NEW-1,Acme,DE,en,72,Olivia,o@faß-.example,,\n", "cannot be encoded for email (IDNA 2008)"),
        (
            "NEW-1,Acme,DE,en,72,Olivia,o@acme.example,,\nnew-1,Acme,DE,en,72,Bob,b@acme.example,,\n",
            "account_reference 'new-1' differs only in case from 'NEW-1' on row 2",
        ),
    ],
)
def test_it_refuses_bad_rows_in_import_customers_and_stores_nothing(
    demo, tmp_path: Path, capsys, row, problem
):
    before = db_state()
    file = tmp_path / "customers.csv"
    file.write_text(HEADER + row, encoding="utf-8", newline="")

    with pytest.raises(CommandError, match="nothing was stored"):
        call_command("import_customers", str(file))

    assert problem in capsys.readouterr().err
    assert db_state() == before


def test_it_stores_an_international_domain_encoded_through_import_customers(db, tmp_path: Path):
    file = tmp_path / "customers.csv"
    file.write_text(HEADER + "NEW-1,Faß GmbH,DE,de,72,Info,info@faß.de,,\n", encoding="utf-8")

    call_command("import_customers", str(file))

    assert Contact.objects.get(customer__account_reference="NEW-1").email == "info@xn--fa-hia.de"
