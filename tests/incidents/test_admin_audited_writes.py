"""Every write a superuser makes in /admin/ goes through an audited service or is refused:
deleting or renaming a product is audited on every incident that lists it, a supplier change on
every incident naming it, a customer change on the customer's chain; deletions that would
rewrite a finished record or a history are refused with a message."""

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.test import Client, RequestFactory
from django.urls import reverse

from incidents import services
from incidents.audit import verify_chain
from incidents.models import AuditEvent, Customer, CustomerAuditEvent, Incident, Product, Supplier


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def admin_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_deleting_a_product_in_the_admin_is_audited_on_every_incident_listing_it(
    admin_client, make_incident, superuser
):
    portal, other = Product.objects.create(name="Support Portal"), Product.objects.create(name="Billing")
    first = make_incident(state="triaged", products=[portal, other])
    second = make_incident(products=[portal])
    untouched = make_incident(products=[other])
    untouched_length = untouched.audit_events.count()

    response = admin_client.post(_url(Product, "delete", portal.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Product.objects.filter(pk=portal.pk).exists()
    for incident in (first, second):
        event = AuditEvent.objects.filter(incident=incident).order_by("-sequence")[0]
        assert event.verb == "product_deleted" and event.actor_username == superuser.username
        assert event.data["product"] == {"id": portal.pk, "name": "Support Portal"}
        assert portal.pk in event.data["changes"]["products"][0]
        assert portal.pk not in event.data["changes"]["products"][1]
    assert list(first.products.values_list("name", flat=True)) == ["Billing"]
    assert untouched.audit_events.count() == untouched_length
    assert verify_chain() == []


def test_a_product_listed_by_a_closed_incident_is_not_deleted(admin_client, make_incident):
    portal = Product.objects.create(name="Support Portal")
    closed = make_incident(state="closed", products=[portal])
    events = closed.audit_events.count()

    response = admin_client.post(_url(Product, "delete", portal.pk), {"post": "yes"}, follow=True)

    assert Product.objects.filter(pk=portal.pk).exists()
    assert closed.audit_events.count() == events
    assert any(
        f"Not deleted: Product Support Portal is listed by finished incident(s) {closed.reference}" in message
        for message in _messages(response)
    )


def test_renaming_a_product_in_the_admin_is_audited_on_every_incident_listing_it(admin_client, make_incident):
    portal = Product.objects.create(name="Support Portal")
    incident = make_incident(products=[portal])

    response = admin_client.post(
        _url(Product, "change", portal.pk), {"name": "Customer Portal", "description": ""}
    )

    assert response.status_code == 302
    event = incident.audit_events.order_by("-sequence")[0]
    assert (event.verb, event.data) == (
        "product_changed",
        {"product": portal.pk, "changes": {"name": ["Support Portal", "Customer Portal"]}},
    )


def test_the_bulk_delete_action_is_not_offered_for_reference_data(admin_client, make_incident):
    portal = Product.objects.create(name="Support Portal")
    make_incident(products=[portal])

    page = admin_client.get(_url(Product, "changelist")).content.decode()
    admin_client.post(
        _url(Product, "changelist"),
        {"action": "delete_selected", "_selected_action": [portal.pk], "post": "yes"},
    )

    assert 'value="delete_selected"' not in page
    assert Product.objects.filter(pk=portal.pk).exists()


def test_changing_a_supplier_is_audited_on_every_incident_naming_it(admin_client, make_incident):
    mailer = Supplier.objects.create(name="Mailer Ltd", country="IE")
    incident = make_incident(sub_processor=mailer)

    admin_client.post(
        _url(Supplier, "change", mailer.pk),
        {"name": "Mailer Ltd", "services": "", "country": "DE", "contact": ""},
    )

    event = incident.audit_events.order_by("-sequence")[0]
    assert event.verb == "sub_processor_changed"
    assert event.data == {"supplier": mailer.pk, "changes": {"country": ["IE", "DE"]}}


def test_a_supplier_named_by_an_incident_is_not_deleted(admin_client, make_incident, superuser):
    from incidents import reference
    from incidents.exceptions import LifecycleConflict

    mailer = Supplier.objects.create(name="Mailer Ltd")
    incident = make_incident(sub_processor=mailer)

    admin_client.post(_url(Supplier, "delete", mailer.pk), {"post": "yes"})
    with pytest.raises(LifecycleConflict, match=f"sub-processor of incident\\(s\\) {incident.reference}"):
        reference.supplier_delete(actor=superuser, supplier=mailer)

    assert Supplier.objects.filter(pk=mailer.pk).exists()
    assert Incident.objects.get(pk=incident.pk).sub_processor == mailer


def test_a_customer_with_a_history_is_not_deleted_and_its_changes_are_audited(
    admin_client, customer, superuser
):
    from incidents import reference
    from incidents.exceptions import LifecycleConflict

    services.contact_create(customer=customer, actor=None, name="Bea Second", email="bea@acme.example")

    admin_client.post(_url(Customer, "delete", customer.pk), {"post": "yes"})
    with pytest.raises(LifecycleConflict, match="has an audit trail"):
        reference.customer_delete(actor=superuser, customer=customer)
    assert Customer.objects.filter(pk=customer.pk).exists()

    old_name = customer.name
    customer.name = "Acme Renamed Ltd"
    services.customer_save(actor=superuser, customer=customer, changed=["name"])
    event = CustomerAuditEvent.objects.filter(customer=customer).order_by("-sequence")[0]
    assert event.verb == "customer_changed"
    assert event.data == {"changes": {"name": [old_name, "Acme Renamed Ltd"]}}


def test_a_customer_affected_by_an_incident_is_not_deleted(make_incident, superuser):
    from incidents import reference
    from incidents.exceptions import LifecycleConflict

    incident = make_incident(state="declared")
    affected = incident.affected_customers.get().customer

    with pytest.raises(LifecycleConflict, match=f"affected by incident\\(s\\) {incident.reference}"):
        reference.customer_delete(actor=superuser, customer=affected)


def test_a_customer_created_in_the_admin_starts_its_chain(admin_client):
    page = admin_client.get(_url(Customer, "add"))
    assert page.status_code == 200
    data = {
        "name": "Globex",
        "account_reference": "GLOBEX-001",
        "country": "DE",
        "preferred_language": "en",
        "notification_window_hours": "72",
        "contacts-TOTAL_FORMS": "0",
        "contacts-INITIAL_FORMS": "0",
        "contacts-MIN_NUM_FORMS": "0",
        "contacts-MAX_NUM_FORMS": "1000",
        "audit_events-TOTAL_FORMS": "0",
        "audit_events-INITIAL_FORMS": "0",
        "audit_events-MIN_NUM_FORMS": "0",
        "audit_events-MAX_NUM_FORMS": "1000",
    }

    response = admin_client.post(_url(Customer, "add"), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    globex = Customer.objects.get(account_reference="GLOBEX-001")
    (event,) = CustomerAuditEvent.objects.filter(customer=globex)
    assert event.verb == "customer_created" and event.data["fields"]["name"] == "Globex"


#: Every model a superuser may add, change or delete in /admin/, and how that write is kept honest.
#: A new ModelAdmin with write permissions fails the test below until it is given an entry.
ADMIN_WRITES = {
    "incidents.Incident": "services.incident_create / incident_update (audited); never deleted",
    "incidents.Customer": "services.customer_save (customer chain); reference.customer_delete refuses a history",
    "incidents.Contact": "services.contact_create / contact_update (customer chain); never deleted",
    "incidents.Product": "reference.product_save / product_delete (audited on each incident)",
    "incidents.Supplier": "reference.supplier_save / supplier_delete (audited on each incident)",
    "incidents.AlertSource": "is_active only; no incident changes (admin history)",
    "incidents.AccountExpiry": "account configuration, no incident changes (admin history)",
    "incidents.ApiToken": "the revoke action only (api_token_revoke)",
    "postmortems.Course": "training.course_create / course_update (course chain); never deleted",
    "triage.StakeholderGroup": "configuration; a group that alerted is protected by its alerts",
    "triage.PlaybookTemplate": "configuration; not deleted once an incident has tasks from it",
    "auth.User": "accounts (Django's admin history); deleting one keeps actor_username in the trail",
    "auth.Group": "roles (Django's admin history)",
    "axes.AccessAttempt": "sign-in lock-outs (django-axes): a superuser lifts one early; no incident changes",
    "axes.AccessLog": "sign-in log (django-axes); no incident changes",
    "axes.AccessFailureLog": "failed sign-ins (django-axes); no incident changes",
    "otp_totp.TOTPDevice": "second-factor devices: a superuser deletes a lost one; no incident changes",
}


def test_every_admin_with_write_permissions_is_accounted_for(superuser):
    request = RequestFactory().get("/admin/")
    request.user = superuser
    writable: set[str] = set()
    for model, model_admin in admin.site._registry.items():
        if (
            model_admin.has_add_permission(request)
            or model_admin.has_change_permission(request)
            or model_admin.has_delete_permission(request)
            or model_admin.get_actions(request)
        ):
            writable.add(model._meta.label)

    assert writable == set(ADMIN_WRITES)
