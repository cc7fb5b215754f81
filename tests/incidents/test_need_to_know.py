"""Need-to-know incidents (issue 10, item 1): a restricted incident is invisible to everyone
but its members on every read route, in every count and metric, and in email subjects; the
restriction and every change to it are audited.

The matrix walks the whole URLconf: every route must be classified in ``ROUTES`` (or, for the
admin and the auditor site, its model in ``ADMIN_MODELS``), so a new route fails here until
someone decides how need-to-know applies to it.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from incidents import services
from incidents.audit_site import audit_site
from incidents.files import evidence_file_upload
from incidents.models import AccountExpiry, AuditEvent, Contact, Customer, Incident, IncidentRestriction
from incidents.selectors import RESTRICTED_SUBJECT, incidents_visible_to, visible_related
from notifications import services as notification_services
from notifications.models import Clock, Delivery, Notice
from notifications.sender import deliveries_send_due
from postmortems import services as postmortem_services
from postmortems.models import ActionItem
from tests.conftest import _user_in
from tests.notifications.support import approve
from tests.triage.conftest import IN_SCOPE
from triage.models import ResponseTask
from triage.services import assessment_record

#: In the restricted incident's title, note and action item: found in a response, it leaked.
MARK = "Zephyrine"

#: An id no row has.
MISSING = 987654

# How need-to-know applies to each route (by URL name):
# - "incident": names the restricted incident (and its rows) in its path: a non-member gets the
#   answer an unknown id gets (404), a member (for a GET route) does not get 404;
# - "incident-drill": as "incident", but only drills have the record, so the member check is
#   skipped (the restricted incident is no drill);
# - ("object", kind): names one row of the incident (a clock, a delivery...) by its own id;
# - "list": lists or exports rows across incidents: 200 without the incident for a non-member,
#   with it for a member;
# - "list-no-sample": such a list whose rows the restricted incident has none of (drills);
# - "metrics": shared aggregates, checked by count in test_it_leaves_restricted_incidents_out_of_the_metrics;
# - "unrelated": shows nothing of any incident (with the reason).
ROUTES: dict[str, Any] = {
    "dashboard:my_work": "list-no-sample",  # the user's own dated items
    "incidents:evidence_file_upload": "incident",
    "incidents:evidence_file_download": "incident",
    "incidents:evidence_file_supersede": "incident",
    "incidents:evidence_file_delete": "incident",
    "incidents:incident_merge": "incident",
    "api:incident-files": "incident",
    "api:incident-file": "incident",
    "api:incident-file-download": "incident",
    "api:incident-file-supersede": "incident",
    "api:incident-merge": "incident",
    # Webhook subscribers belong to no incident; the log names none that is restricted.
    "webhooks:subscriber_list": "unrelated",
    "webhooks:subscriber_new": "unrelated",
    "webhooks:subscriber_detail": "unrelated",
    "webhooks:subscriber_deactivate": "unrelated",
    "webhooks:subscriber_rotate_secret": "unrelated",
    "webhooks:delivery_redeliver": "unrelated",
    "api:webhook-subscriber-list": "unrelated",
    "api:webhook-subscriber-detail": "unrelated",
    "api:webhook-subscriber-deliveries": "unrelated",
    "api:webhook-subscriber-redeliver": "unrelated",
    "api:webhook-subscriber-rotate-secret": "unrelated",
    # Sign-in: the second factor, WebAuthn, single sign-on.
    "two_factor_verify": "unrelated",
    "two_factor_setup": "unrelated",
    "otp_webauthn:credential-authentication-begin": "unrelated",
    "otp_webauthn:credential-authentication-complete": "unrelated",
    "otp_webauthn:credential-registration-begin": "unrelated",
    "otp_webauthn:credential-registration-complete": "unrelated",
    "otp_webauthn:js-i18n-catalog": "unrelated",
    "oidc_authentication_init": "unrelated",
    "oidc_authentication_callback": "unrelated",
    "dashboard:board": "list",
    "dashboard:metrics": "metrics",
    "dashboard:customer_list": "unrelated",  # customers only
    "dashboard:customer_new": "unrelated",
    "dashboard:customer_import": "unrelated",
    "dashboard:customer_detail": ("list", "customer"),  # the incidents that affected it
    "dashboard:customer_edit": "unrelated",
    "dashboard:contact_new": "unrelated",
    "dashboard:contact_edit": "unrelated",
    "dashboard:contact_deactivate": "unrelated",
    "customer_report": "unrelated",  # the public report form
    "login": "unrelated",
    "logout": "unrelated",
    "triage:assessment_new": "incident",
    "triage:triage_transition": "incident",
    "triage:task_update": "incident",
    "incidents:incident_list": "list",
    "incidents:incident_new": "unrelated",
    "incidents:incident_detail": "incident",
    "incidents:incident_edit": "incident",
    "incidents:incident_transition": "incident",
    "incidents:note_add": "incident",
    "incidents:incident_restriction": "incident",
    "incidents:affected_customer_add": "incident",
    "incidents:affected_customer_remove": "incident",
    "notifications:incident_notification": "incident",
    "notifications:clock_manage": "incident",
    "notifications:clock_late_reason": "incident",
    "notifications:clock_waive": "incident",
    "notifications:clock_restart": "incident",
    "notifications:withholding_create": "incident",
    "notifications:withholding_release": "incident",
    "notifications:notice_draft": "incident",
    "notifications:notice_detail": "incident",
    "notifications:notice_edit": "incident",
    "notifications:notice_approve": "incident",
    "notifications:notice_translate": "incident",
    "notifications:deliveries_acknowledge_failure": "incident",
    "contacts:confirm": "unrelated",  # a contact's confirmation link: no incident
    "contacts:confirmed": "unrelated",
    "contacts:readiness": "unrelated",  # contact readiness says nothing about incidents
    "contacts:customer_readiness": "unrelated",
    "contacts:customer_confirmation_send": "unrelated",
    "postmortems:post_mortem": "incident",
    "postmortems:post_mortem_complete": "incident",
    "postmortems:post_mortem_review": "incident",
    "postmortems:post_mortem_summary_into_notice": "incident",
    "postmortems:action_item_add": "incident",
    "postmortems:action_item_status": "incident",
    "postmortems:action_item_verify": "incident",
    "postmortems:drill": "incident-drill",
    "postmortems:drill_complete": "incident-drill",
    "postmortems:action_items": "list",
    "training:overdue": "unrelated",  # training records of people
    "triage_api:assessment_list": "incident",
    "triage_api:triage_transition": "incident",
    "triage_api:task_list": "incident",
    "triage_api:task_detail": ("object", "task"),
    "triage_api:severity": "unrelated",  # a calculator
    "api:intake-alerts": "unrelated",  # signed intake, no session
    "api:incident-restriction": "incident",
    "api:incident-list": "list",
    "api:incident-detail": "incident",
    "api:incident-affected-customers": "incident",
    "api:incident-transition": "incident",
    "api:customer-list": "unrelated",
    "api:customer-readiness": "unrelated",
    "api:customer-detail": "unrelated",
    "api:contact-list": "unrelated",
    "api:contact-detail": "unrelated",
    "api:token-list": "unrelated",
    "api:token-detail": "unrelated",
    "api:read-log-list": "unrelated",  # who read which path (auditors' reads), not incident data
    "notifications_api:incident-clock-list": "incident",
    "notifications_api:incident-notice-list": "incident",
    "notifications_api:incident-notice-detail": "incident",
    "notifications_api:incident-notice-approve": "incident",
    "notifications_api:incident-notice-preview": "incident",
    "notifications_api:incident-translation-list": "incident",
    "notifications_api:incident-withholding-list": "incident",
    "notifications_api:clock-list": "list",
    "notifications_api:clock-detail": ("object", "clock"),
    "notifications_api:clock-late-reason": ("object", "clock"),
    "notifications_api:clock-restart": ("object", "clock"),
    "notifications_api:clock-waive": ("object", "clock"),
    "notifications_api:withholding-detail": ("object", "withholding"),
    "notifications_api:withholding-release": ("object", "withholding"),
    "notifications_api:delivery-list": "list",
    "notifications_api:delivery-detail": ("object", "delivery"),
    "notifications_api:incident-acknowledge-delivery-failure": "incident",
    "postmortems_api:action-item-list": "list",
    "postmortems_api:action-item-detail": ("object", "item"),
    "postmortems_api:action-item-verify": ("object", "item"),
    "postmortems_api:drill-list": "list-no-sample",
    "postmortems_api:incident-post-mortem": "incident",
    "postmortems_api:incident-post-mortem-complete": "incident",
    "postmortems_api:incident-post-mortem-review": "incident",
    "postmortems_api:incident-post-mortem-summary-into-notice": "incident",
    "postmortems_api:incident-action-items": "incident",
    "postmortems_api:incident-drill": "incident-drill",
    "postmortems_api:incident-drill-complete": "incident-drill",
    "training_api:overdue": "unrelated",
    "api-metrics": "metrics",
    "api-schema": "unrelated",
    "audit-register-csv": "list",
    "audit-register-xlsx": "list",
    "audit-evidence-pack": "incident",
    "audit-training-verify": "unrelated",
}

#: Lists whose rows do not name their incident: the restricted incident's row is found by its
#: own id (``"id": N``).
LIST_ROWS = {"notifications_api:clock-list": "clock"}


def _lists(body: str, name: str, rows: dict[str, Any]) -> bool:
    """Whether a list response shows the restricted incident or one of its rows."""
    if name in LIST_ROWS:
        return bool(re.search(rf'"id":\s*{rows[LIST_ROWS[name]].pk}\b', body))
    return _shows(body, rows["incident"])


#: Model admins of /admin/ and /audit/: the lookup from a row to its incident, or ``None`` when
#: its rows belong to no incident. A model registered on either site but missing here fails.
ADMIN_MODELS: dict[str, str | None] = {
    "axes.AccessAttempt": None,
    "axes.AccessLog": None,
    "axes.AccessFailureLog": None,
    "otp_totp.TOTPDevice": None,
    "incidents.SecurityAuditEvent": None,  # sign-in events: who, when, which path
    "incidents.AuditCheckpoint": None,  # names chains by id: filtered in incidents.admin_guard
    "incidents.EvidenceFile": "incident",
    "incidents.WebhookSubscriber": None,
    "incidents.WebhookEvent": "incident",
    "incidents.WebhookDelivery": "event__incident",
    "incidents.WebhookAttempt": "delivery__event__incident",
    "notifications.DueReminder": "incident",
    "auth.Group": None,
    "auth.User": None,
    "incidents.Customer": None,
    "incidents.Contact": None,
    "incidents.Product": None,
    "incidents.Supplier": None,
    "incidents.Incident": "pk",
    "incidents.AffectedCustomer": "incident",
    "incidents.AuditEvent": "incident",
    "incidents.CustomerAuditEvent": None,
    "incidents.WorkerHeartbeat": None,
    "incidents.ReadLogEntry": None,
    "incidents.AlertSource": None,
    "incidents.Alert": "incident",
    "incidents.AlertThread": "incident",
    "incidents.CustomerReport": "incident",
    "incidents.OutgoingEmail": "incident",  # report confirmations, declaration alerts
    "incidents.IdempotencyRecord": None,
    "incidents.ApiToken": None,
    "incidents.AccountExpiry": None,
    "incidents.Note": "incident",
    "incidents.IncidentRestriction": "incident",
    "incidents.IncidentRestrictionMember": "restriction__incident",
    "triage.StakeholderGroup": None,
    "triage.PlaybookTemplate": None,
    "triage.PlaybookStep": None,
    "triage.Assessment": "incident",
    "triage.StakeholderAlert": "incident",
    "triage.ResponseTask": "incident",
    "postmortems.PostMortem": "incident",
    "postmortems.ActionItem": "post_mortem__incident",
    "postmortems.Drill": "incident",
    "postmortems.PostMortemVersion": "post_mortem__incident",
    "postmortems.CustomerSummaryStatement": "post_mortem__incident",
    "postmortems.SummaryRelease": "post_mortem__incident",
    "postmortems.ActionItemReminder": "action_item__post_mortem__incident",
    "postmortems.DrillParticipant": "drill__incident",
    "postmortems.Course": None,
    "postmortems.TrainingRecord": None,
    "postmortems.TrainingImport": None,
    "postmortems.TrainingAuditEvent": None,
    "notifications.Clock": "incident",
    "notifications.Escalation": "clock__incident",
    "notifications.Notice": "incident",
    "notifications.NoticeRecipient": "notice__incident",
    "notifications.NoticeMessage": "notice__incident",
    "notifications.Translation": "incident",
    "notifications.Withholding": "incident",
    "notifications.Delivery": "notice__incident",
    "notifications.SentMessage": "delivery__notice__incident",
    "notifications.SkippedRecipient": "notice__incident",
    "notifications.OutgoingEmail": "incident",  # contact confirmations, staff emails
    "notifications.ContactConfirmationRequest": None,
}

#: The admin sites' own pages (no model's rows): index, login, the auditor site's verification.
SITE_ROUTES = {
    "index",
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "autocomplete",
    "jsi18n",
    "view_on_site",
    "app_list",
    "verify_audit_trail",
    "None",
}


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> list[tuple[str, str]]:
    found = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            found += _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else str(entry.name)
            found.append((prefix + str(entry.pattern), name))
    return found


def _admin_route(name: str) -> tuple[str, str, str] | None:
    """``(site, model label, view)`` for an admin or auditor-site route name, else ``None``."""
    site_name, _, rest = name.partition(":")
    if site_name not in ("admin", "audit") or not _:
        return None
    site = admin.site if site_name == "admin" else audit_site
    for model in site._registry:
        stem = f"{model._meta.app_label}_{model._meta.model_name}_"
        if rest.startswith(stem):
            return site_name, model._meta.label, rest[len(stem) :]
    return site_name, "", rest


# The world: a restricted incident with rows of every kind, an unrestricted one, the personas.


@pytest.fixture
def world(
    db,
    make_incident,
    responder,
    manager,
    auditor,
    superuser,
    django_user_model,
    smtp_server,
    settings,
    tmp_path,
):
    """``responder``, ``manager``, ``auditor`` and ``superuser`` are not members; ``mona``
    (incident manager, who restricts it), ``remy`` (responder), ``ada`` (auditor, granted) and
    ``sue`` (superuser) are."""
    mona = _user_in(django_user_model, "mona.member", "incident_manager")
    remy = _user_in(django_user_model, "remy.member", "responder")
    ada = _user_in(django_user_model, "ada.member", "auditor")
    AccountExpiry.objects.create(user=ada, expires_at=timezone.now() + timedelta(days=30))
    sue = django_user_model.objects.create_superuser(
        username="sue.super", email="sue@breachdesk.test", password="correct horse battery"
    )
    unrestricted = make_incident(state="declared", title="Ordinary unrestricted case")

    incident = services.incident_create(
        actor=remy, fields={"title": f"{MARK} insider case", "detection_source": "staff_escalation"}
    )
    in_scope: dict[str, Any] = dict(IN_SCOPE)
    assessment_record(incident=incident, actor=remy, **in_scope)
    customer = Customer.objects.create(name="Quiet Customer AG", account_reference="QUIET-1", country="DE")
    Contact.objects.create(customer=customer, name="Quinn Admin", email="quinn@quiet.example")
    services.affected_customer_add(incident=incident, customer=customer, actor=remy)
    incident = services.incident_declare(incident=incident, actor=mona, nature_of_breach="Exported by staff.")
    notice = notification_services.notice_draft(incident=incident, actor=mona, kind="initial")
    approve(notice, mona)
    deliveries_send_due()
    withholding = notification_services.withholding_create(
        incident=incident,
        actor=mona,
        field="mitigation_measures",
        reason="law_enforcement",
        requested_by="The police",
        review_at=timezone.now() + timedelta(days=7),
    )
    services.note_add(incident=incident, actor=remy, text=f"{MARK} interview notes")
    incident = Incident.objects.get(pk=incident.pk)
    incident = services.incident_begin_post_mortem(incident=incident, actor=mona)
    item = postmortem_services.action_item_create(
        incident=incident, actor=mona, description=f"{MARK} revoke access", owner=remy
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    evidence = evidence_file_upload(
        incident=incident, actor=remy, upload=SimpleUploadedFile("notes.txt", b"interview"), description=MARK
    )
    services.incident_restriction_set(incident=incident, actor=mona, members=[remy, ada, sue])
    rows = {
        "file": evidence,
        "incident": incident,
        "customer": customer,
        "clock": Clock.objects.filter(incident=incident).first(),
        "notice": Notice.objects.get(incident=incident, number=1),
        "delivery": Delivery.objects.filter(notice__incident=incident).first(),
        "withholding": withholding,
        "item": item,
        "task": ResponseTask.objects.filter(incident=incident).first(),
    }
    assert all(rows.values()), {name: value for name, value in rows.items() if not value}
    return {
        "rows": rows,
        "unrestricted": unrestricted,
        "non_members": {"responder": responder, "incident_manager": manager, "auditor": auditor},
        "members": {"responder": remy, "incident_manager": mona, "auditor": ada},
        "superuser": superuser,
        "member_superuser": sue,
    }


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _kwargs(pattern_names: list[str], rows: dict[str, Any], kind: Any, missing: bool) -> dict[str, Any]:
    incident_pk = MISSING if missing and not isinstance(kind, tuple) else rows["incident"].pk
    values = {
        "pk": incident_pk,
        "incident_pk": incident_pk,
        "incident_id": incident_pk,
        "clock_pk": rows["clock"].pk,
        "number": rows["notice"].number,
        "customer_pk": rows["customer"].pk,
        "task_pk": rows["task"].pk,
        "item_pk": rows["item"].pk,
        "withholding_pk": rows["withholding"].pk,
        "file_id": rows["file"].pk,
        "delivery_pk": MISSING,
        "delivery_id": MISSING,
        "name": "close",
        "transition_name": "close",
    }
    if isinstance(kind, tuple):
        values["pk"] = MISSING if missing else rows[kind[1]].pk
    return {name: values[name] for name in pattern_names}


def _names_in(pattern: str) -> list[str]:
    """The URL arguments of a route pattern (``<int:pk>`` or ``(?P<pk>...)``)."""
    return [a or b for a, b in re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", pattern)]


def _answer(client: Client, url: str) -> Any:
    """GET ``url``; a route that does not take GET (405) is asked with an empty POST."""
    response = client.get(url)
    if response.status_code == 405:
        if url.startswith("/api/"):
            response = client.post(url, data={}, content_type="application/json")
        else:
            response = client.post(url, data={})
    return response


def _body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    content = response.content
    if content[:2] == b"PK":  # a ZIP (XLSX): its XML parts
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return " ".join(archive.read(name).decode(errors="replace") for name in archive.namelist())
    return content.decode(errors="replace")


def _shows(body: str, incident: Incident, *, by_title: bool = True) -> bool:
    """Whether a response names the incident: its title (``by_title``; not for a search, whose
    page repeats the words searched), reference, or id as ``"incident": N``, ``"id": N`` or in
    a link to it."""
    return (
        (by_title and MARK in body)
        or bool(re.search(rf'"id":\s*{incident.pk}\b', body) and not by_title)
        or bool(incident.reference and incident.reference in body)
        or bool(re.search(rf'"incident":\s*{incident.pk}\b', body))
        or f"/incidents/{incident.pk}/" in body
    )


def test_every_route_is_classified_for_need_to_know():
    unclassified = []
    for pattern, name in _walk(get_resolver().url_patterns):
        admin_route = _admin_route(name)
        if admin_route is not None:
            site_name, label, view = admin_route
            if label and label not in ADMIN_MODELS:
                unclassified.append(f"{site_name} model {label} ({pattern})")
            elif not label and view not in SITE_ROUTES:
                unclassified.append(f"{name} ({pattern})")
        elif name not in ROUTES:
            unclassified.append(f"{name} ({pattern})")
    for site in (admin.site, audit_site):
        site.get_urls()  # the auditor site registers every model then
        unclassified += [
            f"{site.name} model {model._meta.label}"
            for model in site._registry
            if model._meta.label not in ADMIN_MODELS
        ]
    assert not unclassified, "Classify these routes in ROUTES or ADMIN_MODELS:\n" + "\n".join(
        sorted(set(unclassified))
    )


def test_it_hides_a_restricted_incident_on_every_read_route_from_non_members(world):
    rows = world["rows"]
    failures: list[str] = []
    non_members = {role: _client(user) for role, user in world["non_members"].items()}
    for pattern, name in _walk(get_resolver().url_patterns):
        kind = ROUTES.get(name)
        if kind in (None, "unrelated", "metrics", "list-no-sample"):
            continue
        names = _names_in(pattern)
        if kind == "list" or (isinstance(kind, tuple) and kind[0] == "list"):
            url = reverse(name, kwargs=_kwargs(names, rows, kind, missing=False) if names else None)
            for role, client in non_members.items():
                response = _answer(client, url)
                if response.status_code == 200 and _lists(_body(response), name, rows):
                    failures.append(f"{name} as {role}: lists the restricted incident")
                elif response.status_code not in (200, 302, 403, 404):  # 302: the audit site's login
                    failures.append(f"{name} as {role}: {response.status_code}")
            continue
        url = reverse(name, kwargs=_kwargs(names, rows, kind, missing=False))
        unknown = reverse(name, kwargs=_kwargs(names, rows, kind, missing=True))
        for role, client in non_members.items():
            response, baseline = _answer(client, url), _answer(client, unknown)
            # 403 or 302 (the audit site's login) only as for an unknown id: the role may not
            # use the route at all, whichever incident.
            if response.status_code != baseline.status_code or response.status_code not in (302, 403, 404):
                failures.append(
                    f"{name} as {role}: {response.status_code} (an unknown id: {baseline.status_code})"
                )
            if MARK in _body(response):
                failures.append(f"{name} as {role}: names the restricted incident")
    assert not failures, "\n".join(failures)


def test_it_shows_a_restricted_incident_on_every_read_route_to_a_member(world):
    rows = world["rows"]
    failures: list[str] = []
    manager = _client(world["members"]["incident_manager"])
    auditor = _client(world["members"]["auditor"])
    for pattern, name in _walk(get_resolver().url_patterns):
        kind = ROUTES.get(name)
        if kind in (None, "unrelated", "metrics", "list-no-sample", "incident-drill"):
            continue
        client = auditor if name.startswith("audit") else manager
        names = _names_in(pattern)
        url = reverse(name, kwargs=_kwargs(names, rows, kind, missing=False) if names else None)
        response = client.get(url)
        if response.status_code == 405:
            continue  # a write: its non-member answer is checked above
        if kind == "list" or (isinstance(kind, tuple) and kind[0] == "list"):
            if response.status_code != 200 or not _lists(_body(response), name, rows):
                failures.append(f"{name}: {response.status_code}, the incident not listed for a member")
        elif response.status_code == 404:
            failures.append(f"{name}: 404 for a member")
    assert not failures, "\n".join(failures)


def test_it_hides_a_restricted_incident_in_the_admin_and_the_auditor_site(world):
    incident = world["rows"]["incident"]
    failures: list[str] = []
    audit_site.get_urls()
    cases = [
        ("admin", admin.site, _client(world["superuser"]), _client(world["member_superuser"])),
        ("audit", audit_site, _client(world["non_members"]["auditor"]), _client(world["members"]["auditor"])),
    ]
    for prefix, site, outsider, member in cases:
        for model in site._registry:
            path = ADMIN_MODELS[model._meta.label]
            if path is None:
                continue
            sample = model._default_manager.filter(**{path: incident.pk}).first()
            base = f"/{prefix}/{model._meta.app_label}/{model._meta.model_name}/"
            listed = outsider.get(base)
            if listed.status_code != 200:
                failures.append(f"{base} as a non-member: {listed.status_code}")
            if sample is None:
                if MARK in _body(listed):
                    failures.append(f"{base}: names the restricted incident")
                continue
            link = f"{base}{sample.pk}/change/"
            if link in _body(listed) or MARK in _body(listed):
                failures.append(f"{base}: lists a row of the restricted incident to a non-member")
            if link not in _body(member.get(base)):
                failures.append(f"{base}: does not list the row to a member")
            for view in ("change/", "history/", "delete/"):
                answer = outsider.get(f"{base}{sample.pk}/{view}")
                unknown = outsider.get(f"{base}{MISSING}/{view}")
                if answer.status_code != unknown.status_code or MARK in _body(answer):
                    failures.append(
                        f"{base}{{id}}/{view} as a non-member: {answer.status_code} (unknown: {unknown.status_code})"
                    )
            if member.get(link).status_code != 200:
                failures.append(f"{link} as a member: {member.get(link).status_code}")
        # A form's choice of incidents (adding an affected customer in /admin/) hides it too.
    add_form = _client(world["superuser"]).get("/admin/incidents/affectedcustomer/add/")
    if add_form.status_code == 200 and MARK in _body(add_form):
        failures.append("the admin's incident choices offer the restricted incident")
    assert not failures, "\n".join(failures)


def test_it_finds_a_restricted_incident_by_search_only_for_members(world):
    incident = world["rows"]["incident"]
    searches = [f"/?q={MARK}", f"/incidents/?q={MARK}", f"/api/incidents/?search={MARK}"]
    for role, user in world["non_members"].items():
        client = _client(user)
        for url in searches:
            response = client.get(url)
            assert response.status_code in (200, 403), (url, role)
            assert not _shows(_body(response), incident, by_title=False), (url, role)
    for role in ("responder", "incident_manager"):
        client = _client(world["members"][role])
        for url in searches:
            assert _shows(_body(client.get(url)), incident, by_title=False), (url, role)
    # A filter naming the incident answers as for an unknown id (400), not with an empty list.
    for user in world["non_members"].values():
        client = _client(user)
        named = client.get(f"/api/deliveries/?incident={incident.pk}").status_code
        assert named == client.get(f"/api/deliveries/?incident={MISSING}").status_code
    assert (
        _client(world["members"]["incident_manager"])
        .get(f"/api/deliveries/?incident={incident.pk}")
        .status_code
        == 200
    )


def test_it_leaves_restricted_incidents_out_of_the_counts_and_the_metrics(world):
    from dashboard.metrics import metrics_refresh

    incident, mona = world["rows"]["incident"], world["members"]["incident_manager"]

    def total(user: Any) -> int:
        metrics_refresh()
        figures = _client(user).get("/api/metrics/").json()
        return sum(month["incidents"] for month in figures["months"])

    assert total(world["non_members"]["responder"]) == 1  # only the unrestricted incident
    assert incidents_visible_to(world["non_members"]["incident_manager"]).count() == 1
    assert incidents_visible_to(mona).count() == 2
    assert (
        visible_related(world["non_members"]["auditor"], Clock.objects.all())
        .filter(incident=incident)
        .count()
        == 0
    )

    services.incident_restriction_lift(incident=incident, actor=mona)
    assert total(world["non_members"]["responder"]) == 2


def test_a_member_of_each_role_sees_the_incident_and_a_non_member_gets_404(world):
    incident = world["rows"]["incident"]
    for role, user in world["members"].items():
        client = _client(user)
        assert client.get(f"/incidents/{incident.pk}/").status_code == 200, role
        assert client.get(f"/api/incidents/{incident.pk}/").status_code == 200, role
    for role, user in world["non_members"].items():
        client = _client(user)
        assert client.get(f"/incidents/{incident.pk}/").status_code == 404, role
        assert client.get(f"/api/incidents/{incident.pk}/").status_code == 404, role
    auditor = _client(world["members"]["auditor"])
    assert auditor.get(f"/audit/incidents/{incident.pk}/evidence-pack.zip").status_code == 200
    outsider = _client(world["non_members"]["auditor"])
    assert outsider.get(f"/audit/incidents/{incident.pk}/evidence-pack.zip").status_code == 404


# The restriction API and page --------------------------------------------------------------


def test_it_restricts_changes_and_lifts_through_the_api_with_audit_events(
    make_incident, manager, responder, auditor
):
    incident = make_incident(state="triaged")
    api = _client(manager)
    url = f"/api/incidents/{incident.pk}/restriction/"

    assert api.get(url).json()["restricted"] is False
    answer = api.put(url, {"members": [responder.username]}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["members"] == sorted([manager.username, responder.username])
    assert _client(auditor).get(f"/incidents/{incident.pk}/").status_code == 404

    answer = api.put(url, {"members": [auditor.username]}, content_type="application/json")
    assert answer.json()["members"] == sorted([manager.username, auditor.username])
    assert answer.json()["auditors"] == [auditor.username]
    assert _client(auditor).get(f"/incidents/{incident.pk}/").status_code == 200
    assert _client(responder).get(f"/incidents/{incident.pk}/").status_code == 404

    assert api.delete(url).status_code == 204
    assert _client(responder).get(f"/incidents/{incident.pk}/").status_code == 200
    assert api.delete(url).status_code == 409

    events = list(
        AuditEvent.objects.filter(incident=incident).order_by("sequence").values_list("verb", "data")
    )
    verbs = [verb for verb, _ in events]
    assert verbs[-4:] == [
        "incident_restricted",
        "incident_restriction_changed",
        "auditor_access_granted",
        "incident_restriction_lifted",
    ]
    restricted, changed, granted, lifted = (data for _, data in events[-4:])
    assert restricted == {"members": sorted([manager.username, responder.username]), "granted": []}
    assert changed["added"] == [auditor.username] and changed["removed"] == [responder.username]
    assert changed["granted"] == [auditor.username]
    assert granted == {"auditor": auditor.username}
    assert lifted == {"members": sorted([manager.username, auditor.username])}
    assert not IncidentRestriction.objects.filter(incident=incident).exists()


def test_it_refuses_unknown_usernames_naming_them_and_changes_nothing(make_incident, manager):
    incident = make_incident()
    answer = _client(manager).put(
        f"/api/incidents/{incident.pk}/restriction/",
        {"members": ["nobody.here", "ghost"]},
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert "nobody.here" in answer.content.decode() and "ghost" in answer.content.decode()
    assert not IncidentRestriction.objects.filter(incident=incident).exists()
    bad = _client(manager).put(
        f"/api/incidents/{incident.pk}/restriction/", {"members": "max"}, content_type="application/json"
    )
    assert bad.status_code == 400


def test_only_incident_managers_restrict_and_a_non_member_manager_gets_404(
    make_incident, manager, responder, django_user_model
):
    incident = make_incident()
    url = f"/api/incidents/{incident.pk}/restriction/"
    refused = _client(responder).put(url, {"members": []}, content_type="application/json")
    assert refused.status_code == 403
    assert (
        _client(manager)
        .put(url, {"members": [responder.username]}, content_type="application/json")
        .status_code
        == 200
    )
    other = _user_in(django_user_model, "olga.manager", "incident_manager")
    for method in ("get", "put", "delete"):
        answer = getattr(_client(other), method)(url, {"members": []}, content_type="application/json")
        assert answer.status_code == 404, method
    assert _client(responder).get(url).status_code == 403  # a member, but not an incident manager


def test_the_incident_page_restricts_and_lifts_through_its_form(make_incident, manager, responder):
    incident = make_incident()
    client = _client(manager)
    page = client.get(f"/incidents/{incident.pk}/")
    assert b'id="restriction-form"' in page.content
    assert b'id="restriction-form"' not in _client(responder).get(f"/incidents/{incident.pk}/").content

    wrong = client.post(
        f"/incidents/{incident.pk}/restriction/", {"action": "set", "restriction-members": "ghost"}
    )
    assert wrong.status_code == 400 and b"ghost" in wrong.content

    done = client.post(f"/incidents/{incident.pk}/restriction/", {"action": "set", "restriction-members": ""})
    assert done.status_code == 302
    assert _client(responder).get(f"/incidents/{incident.pk}/").status_code == 404
    assert (
        _client(responder).post(f"/incidents/{incident.pk}/restriction/", {"action": "lift"}).status_code
        == 404
    )

    client.post(f"/incidents/{incident.pk}/restriction/", {"action": "lift"})
    assert _client(responder).get(f"/incidents/{incident.pk}/").status_code == 200


# Email subjects ---------------------------------------------------------------------------------


def test_staff_who_are_not_members_get_an_email_that_names_nothing(
    make_incident, manager, responder, settings
):
    from incidents.outbox import outgoing_emails_send_due
    from incidents.tasks import send_declaration_alert

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    incident = make_incident(state="triaged", title=f"{MARK} declared", owner=responder)
    services.incident_restriction_set(incident=incident, actor=manager, members=[])
    mail.outbox.clear()
    assert send_declaration_alert(incident.pk) == 2  # rows in the outbox, one per address
    outgoing_emails_send_due()
    by_address = {address: message for message in mail.outbox for address in message.to}
    assert MARK not in f"{by_address[responder.email].subject} {by_address[responder.email].body}"
    assert by_address[responder.email].subject == RESTRICTED_SUBJECT
    assert incident.reference not in by_address[responder.email].body
    assert incident.reference in by_address[manager.email].subject


def test_it_audits_an_auditor_grant_and_revocation(make_incident, manager, auditor):
    incident = make_incident()
    services.incident_restriction_set(incident=incident, actor=manager, members=[auditor])
    services.incident_restriction_set(incident=incident, actor=manager, members=[])
    verbs = list(
        AuditEvent.objects.filter(incident=incident).order_by("sequence").values_list("verb", flat=True)
    )
    assert verbs[-4:] == [
        "incident_restricted",
        "auditor_access_granted",
        "incident_restriction_changed",
        "auditor_access_revoked",
    ]
    assert ActionItem.objects.count() == 0  # nothing else was touched


def test_setting_the_same_members_again_writes_no_event(make_incident, manager, responder):
    incident = make_incident()
    services.incident_restriction_set(incident=incident, actor=manager, members=[responder])
    count = AuditEvent.objects.filter(incident=incident).count()
    services.incident_restriction_set(incident=incident, actor=manager, members=[responder, manager])
    assert AuditEvent.objects.filter(incident=incident).count() == count


@pytest.mark.postgresql
def test_the_selector_hides_restricted_incidents_on_postgresql(world):
    incident = world["rows"]["incident"]
    for user in world["non_members"].values():
        assert not incidents_visible_to(user).filter(pk=incident.pk).exists()
        assert (
            not visible_related(user, Delivery.objects.all(), "notice__incident")
            .filter(notice__incident=incident)
            .exists()
        )
    for user in world["members"].values():
        assert incidents_visible_to(user).filter(pk=incident.pk).exists()


def test_the_read_log_and_the_trail_verification_hide_a_restricted_incident(world):
    incident = world["rows"]["incident"]
    granted = _client(world["members"]["auditor"])
    granted.get(f"/incidents/{incident.pk}/")
    granted.get(f"/api/incidents/{incident.pk}/")
    paths = {f"/incidents/{incident.pk}/", f"/api/incidents/{incident.pk}/"}

    def logged(user: Any) -> set[str]:
        return {entry["path"] for entry in _client(user).get("/api/read-log/").json()["results"]}

    assert paths <= logged(world["members"]["incident_manager"])
    assert not paths & logged(world["non_members"]["incident_manager"])
    assert not paths & logged(world["non_members"]["auditor"])
    admin_log = _body(_client(world["superuser"]).get("/admin/incidents/readlogentry/"))
    assert f"/incidents/{incident.pk}/" not in admin_log

    def chains(user: Any) -> int:
        return _client(user).get("/audit/verify/").context["chains"]

    assert chains(world["members"]["auditor"]) == chains(world["non_members"]["auditor"]) + 1


def _sent_by_address(smtp_server) -> dict[str, Any]:
    """Send what the outbox holds; what the SMTP server received, by recipient address."""
    from notifications.sender import outbox_send_due

    outbox_send_due()
    return {address: received for received in smtp_server.received for address in received.recipients}


def test_stakeholder_alerts_and_reminders_name_a_restricted_incident_only_to_members(world, smtp_server):
    from postmortems.models import ActionItemReminder
    from postmortems.reminders import action_item_reminders_scan
    from triage.alerts import stakeholder_alert_emails_queue
    from triage.models import StakeholderAlert

    incident, remy = world["rows"]["incident"], world["members"]["responder"]
    rita = world["non_members"]["responder"]
    alert = StakeholderAlert.objects.filter(incident=incident).first()
    assert alert is not None
    StakeholderAlert.objects.filter(pk=alert.pk).update(
        recipients=["legal@breachdesk.test", remy.email], sent_at=None
    )
    alert.refresh_from_db()
    smtp_server.received.clear()
    assert stakeholder_alert_emails_queue(alert=alert) == 2
    by_address = _sent_by_address(smtp_server)
    legal, member = by_address["legal@breachdesk.test"], by_address[remy.email]
    assert legal.message["Subject"] == RESTRICTED_SUBJECT  # a group mailbox is never a member
    assert incident.reference not in legal.text() and MARK not in legal.text()
    assert incident.reference in member.message["Subject"]

    item = world["rows"]["item"]
    ActionItemReminder.objects.filter(action_item=item).delete()
    for user, kind in ((rita, "due"), (remy, "overdue")):
        ActionItemReminder.objects.create(action_item=item, kind=kind, recipient=user.email)
    smtp_server.received.clear()
    assert action_item_reminders_scan().sent >= 2
    by_address = _sent_by_address(smtp_server)
    outside, inside = by_address[rita.email], by_address[remy.email]
    assert outside.message["Subject"] == RESTRICTED_SUBJECT and MARK not in outside.text()
    assert incident.reference not in outside.text()
    assert incident.reference in inside.message["Subject"]


def test_escalations_name_a_restricted_incident_only_to_members(world, smtp_server):
    from notifications.models import Escalation
    from notifications.services import escalation_emails_queue

    incident, mona = world["rows"]["incident"], world["members"]["incident_manager"]
    max_ = world["non_members"]["incident_manager"]
    escalation = Escalation.objects.create(
        clock=world["rows"]["clock"], threshold="1h", recipients=[max_.email, mona.email], detail="Due soon."
    )
    smtp_server.received.clear()
    assert escalation_emails_queue(escalation=escalation) == 2
    by_address = _sent_by_address(smtp_server)
    assert by_address[max_.email].message["Subject"] == RESTRICTED_SUBJECT
    assert incident.reference not in by_address[max_.email].text()
    assert incident.reference in by_address[mona.email].message["Subject"]
