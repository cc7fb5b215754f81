"""The permission table of every route: for each URL pattern and method, the roles that may use
it. ``tests/test_route_matrix.py`` checks every route of the URLconf against it, as every role,
with every method; a route with no entry fails that test.

Adding a route: add one line to ``ROUTES`` under its app, keyed by ``namespace:name`` (what
``reverse`` takes; an unnamed pattern by its full pattern, e.g. ``admin/(?P<url>.*)$``)::

    "incidents:incident_edit": allow(GET=WRITERS, POST=WRITERS),

Each keyword is a method (``GET``, ``POST``, ``PUT``, ``PATCH``, ``DELETE``) and its value the
roles that may use it (the sets below, or any set of ``ROLES``); a method left out is refused to
everyone (401, 403, 404 or 405; ``HEAD`` goes with ``GET``). ``kwargs=`` names the object each URL
kwarg takes when ``DEFAULT_KWARGS`` would pick the wrong one (``{"pk": "customer"}``); the
objects are built in ``tests/routes.py`` (``build_world``). A key with ``*`` covers every route
it matches (``audit:*_add``); the most specific one wins. A model registered with ``/admin/``
takes one line in ``ADMIN_WRITES`` instead.

What "may use" means, checked by the test: an allowed role is never refused (no 401, 403 or
405, no redirect to a login page, no 5xx; and no 404 to a GET unless ``may_answer_404``, since
the world has every object a URL names); a refused one gets 401, 403, 404 or 405 (or a
redirect to a login page, or to the admin site's index that refuses it), and nothing is written.
The roles are those of the README's role table (``tests/test_role_table.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

ANONYMOUS = "anonymous"
RESPONDER = "responder"
MANAGER = "incident_manager"
AUDITOR = "auditor"
OUTSIDER = "outsider"  # signed in, in no group
SUPERUSER = "superuser"
ROLES = (ANONYMOUS, RESPONDER, MANAGER, AUDITOR, OUTSIDER, SUPERUSER)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

EVERYONE = frozenset(ROLES)
SIGNED_IN = EVERYONE - {ANONYMOUS}
#: Read incidents, customers and notices: every role group.
READERS = frozenset({RESPONDER, MANAGER, AUDITOR, SUPERUSER})
#: Intake, triage, edits, notice drafts: the response team.
WRITERS = frozenset({RESPONDER, MANAGER, SUPERUSER})
#: Declare, approve, withhold, clocks, post-mortems, action items, drills, close.
MANAGERS = frozenset({MANAGER, SUPERUSER})
#: Post-mortems and readiness are read by incident managers and auditors (not responders).
CONFIDENTIAL_READERS = frozenset({MANAGER, AUDITOR, SUPERUSER})
#: An auditor's own records: post-mortem reviews, action item verifications.
AUDITORS = frozenset({AUDITOR, SUPERUSER})
SUPERUSERS = frozenset({SUPERUSER})
NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Entry:
    """The roles allowed per method, and the objects that fill the URL's kwargs."""

    methods: dict[str, frozenset[str]]
    kwargs: dict[str, str] = field(default_factory=dict)
    #: A redirect to the login page is this route's own answer (a logout), not a refusal.
    ends_at_login: bool = False
    #: Nothing may be written even by an allowed role (the auditors' read-only site).
    read_only: bool = False
    #: A GET by an allowed role may answer 404 (a catch-all; a link to a page the model lacks).
    may_answer_404: bool = False

    def allowed(self, method: str) -> frozenset[str]:
        return self.methods.get(method, NOBODY)


def allow(
    *,
    kwargs: dict[str, str] | None = None,
    ends_at_login: bool = False,
    read_only: bool = False,
    may_answer_404: bool = False,
    **methods: frozenset[str],
) -> Entry:
    """An entry: ``allow(GET=READERS, POST=WRITERS, kwargs={"pk": "customer"})``."""
    unknown = set(methods) - set(METHODS)
    assert not unknown, f"unknown methods {unknown}"
    return Entry(
        methods={method: frozenset(roles) for method, roles in methods.items()},
        kwargs=kwargs or {},
        ends_at_login=ends_at_login,
        read_only=read_only,
        may_answer_404=may_answer_404,
    )


#: URL kwarg -> the object (``tests/routes.py``'s world) it takes unless the entry says otherwise.
DEFAULT_KWARGS = {
    "pk": "incident",
    "incident_id": "incident",
    "incident_pk": "incident",
    "clock_pk": "clock",
    "number": "notice_number",
    "withholding_pk": "withholding",
    "customer_pk": "affected_customer",
    "contact_pk": "contact",
    "item_pk": "action_item",
    "task_pk": "task",
    "token": "confirmation_token",
    "name": "transition",
    "transition_name": "transition",
    "object_id": "admin_object",
    "app_label": "admin_app_label",
    "content_type_id": "incident_content_type",
    "id": "user",
    "url": "nothing",
    "file_id": "evidence_file",
    "delivery_pk": "webhook_delivery",
    "delivery_id": "webhook_delivery",
}

_CUSTOMER = {"pk": "customer"}
_POST_MORTEM = {"pk": "post_mortem_incident"}
_DRILL = {"pk": "drill_incident"}
_API_POST_MORTEM = {"incident_pk": "post_mortem_incident"}
_SUBSCRIBER = {"pk": "webhook_subscriber"}
_TOTP_DEVICE = {"pk": "totp_device"}

ROUTES: dict[str, Entry] = {
    # --- dashboard: the board, metrics, customers and contacts -----------------------------------
    "dashboard:board": allow(GET=READERS),
    # Each signed-in user's own dated items (none for a user in no group).
    "dashboard:my_work": allow(GET=SIGNED_IN),
    "dashboard:metrics": allow(GET=READERS),
    "dashboard:customer_list": allow(GET=READERS),
    "dashboard:customer_new": allow(GET=WRITERS, POST=WRITERS),
    "dashboard:customer_import": allow(GET=WRITERS, POST=WRITERS),
    "dashboard:customer_detail": allow(GET=READERS, kwargs=_CUSTOMER),
    "dashboard:customer_edit": allow(GET=WRITERS, POST=WRITERS, kwargs=_CUSTOMER),
    "dashboard:contact_new": allow(GET=WRITERS, POST=WRITERS, kwargs=_CUSTOMER),
    "dashboard:contact_edit": allow(GET=WRITERS, POST=WRITERS, kwargs=_CUSTOMER),
    "dashboard:contact_deactivate": allow(POST=WRITERS, kwargs=_CUSTOMER),
    # --- public pages and sign-in ------------------------------------------------------------
    "customer_report": allow(GET=EVERYONE, POST=EVERYONE),
    "login": allow(GET=EVERYONE, POST=EVERYONE),
    "logout": allow(POST=EVERYONE, ends_at_login=True),
    # The second factor: one's own, once signed in with a password (anonymous: to the login page).
    "two_factor_verify": allow(GET=SIGNED_IN, POST=SIGNED_IN),
    "two_factor_setup": allow(GET=SIGNED_IN, POST=SIGNED_IN),
    "otp_webauthn:credential-registration-begin": allow(POST=SIGNED_IN),
    "otp_webauthn:credential-registration-complete": allow(POST=SIGNED_IN),
    "otp_webauthn:credential-authentication-begin": allow(POST=SIGNED_IN),
    "otp_webauthn:credential-authentication-complete": allow(POST=SIGNED_IN),
    "otp_webauthn:js-i18n-catalog": allow(GET=EVERYONE),
    # Single sign-on starts for anyone; here (OIDC_ENABLED off, as by default) it answers 404.
    "oidc_authentication_init": allow(GET=EVERYONE, may_answer_404=True),
    "oidc_authentication_callback": allow(GET=EVERYONE, may_answer_404=True),
    # --- triage ------------------------------------------------------------------------------
    "triage:assessment_new": allow(GET=WRITERS, POST=WRITERS),
    "triage:triage_transition": allow(POST=WRITERS),
    "triage:task_update": allow(POST=WRITERS),
    # --- incidents ---------------------------------------------------------------------------
    "incidents:incident_list": allow(GET=READERS),
    "incidents:incident_new": allow(GET=WRITERS, POST=WRITERS),
    "incidents:incident_detail": allow(GET=READERS),
    "incidents:incident_edit": allow(GET=WRITERS, POST=WRITERS),
    # Checked with ``close`` (incident managers); each transition's roles: tests/test_role_table.py.
    "incidents:incident_transition": allow(POST=MANAGERS),
    "incidents:note_add": allow(POST=WRITERS),
    "incidents:affected_customer_add": allow(POST=WRITERS),
    "incidents:affected_customer_remove": allow(POST=WRITERS),
    # Need to know: incidents.restrict_incident (incident managers).
    "incidents:incident_restriction": allow(POST=MANAGERS),
    # incidents.merge_incident: responders and incident managers.
    "incidents:incident_merge": allow(POST=WRITERS),
    # Evidence files: view (every role group), add and delete (responders, incident managers).
    "incidents:evidence_file_upload": allow(POST=WRITERS),
    "incidents:evidence_file_download": allow(GET=READERS),
    "incidents:evidence_file_supersede": allow(POST=WRITERS),
    # Refused with 409 after declaration (the world's incident is declared): still not a refusal.
    "incidents:evidence_file_delete": allow(POST=WRITERS),
    # --- webhooks: subscribers read by incident managers and auditors, changed by managers ----
    "webhooks:subscriber_list": allow(GET=CONFIDENTIAL_READERS),
    "webhooks:subscriber_new": allow(GET=MANAGERS, POST=MANAGERS),
    "webhooks:subscriber_detail": allow(GET=CONFIDENTIAL_READERS, POST=MANAGERS, kwargs=_SUBSCRIBER),
    "webhooks:subscriber_deactivate": allow(POST=MANAGERS, kwargs=_SUBSCRIBER),
    "webhooks:subscriber_rotate_secret": allow(POST=MANAGERS, kwargs=_SUBSCRIBER),
    "webhooks:delivery_redeliver": allow(POST=MANAGERS, kwargs=_SUBSCRIBER),
    # --- customer notification ---------------------------------------------------------------
    "notifications:incident_notification": allow(GET=READERS),
    "notifications:clock_manage": allow(GET=MANAGERS),
    "notifications:clock_late_reason": allow(POST=MANAGERS),
    "notifications:clock_waive": allow(POST=MANAGERS),
    "notifications:clock_restart": allow(POST=MANAGERS),
    "notifications:withholding_create": allow(POST=MANAGERS),
    "notifications:withholding_release": allow(POST=MANAGERS),
    "notifications:notice_draft": allow(POST=WRITERS),
    "notifications:notice_detail": allow(GET=READERS),
    "notifications:notice_edit": allow(POST=WRITERS),
    "notifications:notice_approve": allow(POST=MANAGERS),
    "notifications:notice_translate": allow(POST=MANAGERS),
    "notifications:deliveries_acknowledge_failure": allow(POST=MANAGERS),
    # --- contacts: the public confirmation link, readiness -----------------------------------
    "contacts:confirm": allow(GET=EVERYONE, POST=EVERYONE),
    "contacts:confirmed": allow(GET=EVERYONE),
    "contacts:readiness": allow(GET=CONFIDENTIAL_READERS),
    "contacts:customer_readiness": allow(GET=CONFIDENTIAL_READERS, kwargs=_CUSTOMER),
    "contacts:customer_confirmation_send": allow(POST=MANAGERS, kwargs=_CUSTOMER),
    # --- post-mortems, action items, drills, training ----------------------------------------
    "postmortems:post_mortem": allow(GET=CONFIDENTIAL_READERS, POST=MANAGERS, kwargs=_POST_MORTEM),
    "postmortems:post_mortem_complete": allow(POST=MANAGERS, kwargs=_POST_MORTEM),
    "postmortems:post_mortem_review": allow(POST=AUDITORS, kwargs=_POST_MORTEM),
    "postmortems:post_mortem_summary_into_notice": allow(POST=MANAGERS, kwargs=_POST_MORTEM),
    "postmortems:action_item_add": allow(POST=MANAGERS, kwargs=_POST_MORTEM),
    "postmortems:action_item_status": allow(POST=MANAGERS, kwargs=_POST_MORTEM),
    "postmortems:action_item_verify": allow(POST=AUDITORS, kwargs=_POST_MORTEM),
    "postmortems:drill": allow(GET=READERS, POST=MANAGERS, kwargs=_DRILL),
    "postmortems:drill_complete": allow(POST=MANAGERS, kwargs=_DRILL),
    "postmortems:action_items": allow(GET=READERS),
    "training:overdue": allow(GET=READERS),
    # --- API ---------------------------------------------------------------------------------
    "triage_api:assessment_list": allow(GET=READERS, POST=WRITERS),
    "triage_api:triage_transition": allow(POST=WRITERS),
    "triage_api:task_list": allow(GET=READERS),
    "triage_api:task_detail": allow(GET=READERS, PATCH=WRITERS, kwargs={"pk": "task"}),
    "triage_api:severity": allow(POST=READERS),
    # Signed by a monitoring system (no user account): a session is not enough (401 for all).
    "api:intake-alerts": allow(),
    "api:incident-list": allow(GET=READERS, POST=WRITERS),
    "api:incident-detail": allow(GET=READERS, PATCH=WRITERS),
    "api:incident-affected-customers": allow(GET=READERS, POST=WRITERS, PATCH=WRITERS, DELETE=WRITERS),
    "api:incident-transition": allow(POST=MANAGERS),
    "api:incident-merge": allow(POST=WRITERS),
    "api:incident-files": allow(GET=READERS, POST=WRITERS),
    "api:incident-file": allow(GET=READERS, DELETE=WRITERS),
    "api:incident-file-supersede": allow(POST=WRITERS),
    "api:incident-file-download": allow(GET=READERS),
    "api:incident-restriction": allow(GET=MANAGERS, PUT=MANAGERS, DELETE=MANAGERS),
    "api:webhook-subscriber-list": allow(GET=CONFIDENTIAL_READERS, POST=MANAGERS),
    "api:webhook-subscriber-detail": allow(GET=CONFIDENTIAL_READERS, PATCH=MANAGERS, kwargs=_SUBSCRIBER),
    "api:webhook-subscriber-deliveries": allow(GET=CONFIDENTIAL_READERS, kwargs=_SUBSCRIBER),
    "api:webhook-subscriber-redeliver": allow(POST=MANAGERS, kwargs=_SUBSCRIBER),
    "api:webhook-subscriber-rotate-secret": allow(POST=MANAGERS, kwargs=_SUBSCRIBER),
    "api:customer-list": allow(GET=READERS, POST=WRITERS),
    "api:customer-readiness": allow(GET=CONFIDENTIAL_READERS),
    "api:customer-detail": allow(GET=READERS, PUT=WRITERS, PATCH=WRITERS, kwargs=_CUSTOMER),
    "api:contact-list": allow(GET=READERS, POST=WRITERS),
    "api:contact-detail": allow(GET=READERS, PUT=WRITERS, PATCH=WRITERS, kwargs={"pk": "contact"}),
    # Everyone signed in lists and makes their own tokens; the manager's token is theirs alone.
    "api:token-list": allow(GET=SIGNED_IN, POST=SIGNED_IN),
    "api:token-detail": allow(DELETE=frozenset({MANAGER}), kwargs={"pk": "api_token"}),
    "api:read-log-list": allow(GET=CONFIDENTIAL_READERS),
    "notifications_api:incident-clock-list": allow(GET=READERS),
    "notifications_api:incident-notice-list": allow(GET=READERS, POST=WRITERS),
    "notifications_api:incident-notice-detail": allow(GET=READERS, PATCH=WRITERS),
    "notifications_api:incident-notice-approve": allow(POST=MANAGERS),
    "notifications_api:incident-notice-preview": allow(GET=READERS),
    "notifications_api:incident-translation-list": allow(GET=READERS, POST=MANAGERS),
    "notifications_api:incident-withholding-list": allow(GET=READERS, POST=MANAGERS),
    "notifications_api:clock-list": allow(GET=READERS),
    "notifications_api:clock-detail": allow(GET=READERS, kwargs={"pk": "clock"}),
    "notifications_api:clock-late-reason": allow(POST=MANAGERS, kwargs={"pk": "clock"}),
    "notifications_api:clock-restart": allow(POST=MANAGERS, kwargs={"pk": "clock"}),
    "notifications_api:clock-waive": allow(POST=MANAGERS, kwargs={"pk": "clock"}),
    "notifications_api:withholding-detail": allow(GET=READERS, kwargs={"pk": "withholding"}),
    "notifications_api:withholding-release": allow(POST=MANAGERS, kwargs={"pk": "withholding"}),
    "notifications_api:delivery-list": allow(GET=READERS),
    "notifications_api:delivery-detail": allow(GET=READERS, kwargs={"pk": "delivery"}),
    "notifications_api:incident-acknowledge-delivery-failure": allow(POST=MANAGERS),
    "postmortems_api:action-item-list": allow(GET=READERS),
    "postmortems_api:action-item-detail": allow(GET=READERS, PATCH=MANAGERS, kwargs={"pk": "action_item"}),
    "postmortems_api:action-item-verify": allow(POST=AUDITORS, kwargs={"pk": "action_item"}),
    "postmortems_api:drill-list": allow(GET=READERS),
    "postmortems_api:incident-post-mortem": allow(
        GET=CONFIDENTIAL_READERS, PATCH=MANAGERS, kwargs=_API_POST_MORTEM
    ),
    "postmortems_api:incident-post-mortem-complete": allow(POST=MANAGERS, kwargs=_API_POST_MORTEM),
    "postmortems_api:incident-post-mortem-review": allow(POST=AUDITORS, kwargs=_API_POST_MORTEM),
    "postmortems_api:incident-post-mortem-summary-into-notice": allow(POST=MANAGERS, kwargs=_API_POST_MORTEM),
    "postmortems_api:incident-action-items": allow(GET=READERS, POST=MANAGERS, kwargs=_API_POST_MORTEM),
    "postmortems_api:incident-drill": allow(
        GET=READERS, PUT=MANAGERS, kwargs={"incident_pk": "drill_incident"}
    ),
    "postmortems_api:incident-drill-complete": allow(POST=MANAGERS, kwargs={"incident_pk": "drill_incident"}),
    "training_api:overdue": allow(GET=READERS),
    "api-metrics": allow(GET=READERS),
    "api-schema": allow(GET=EVERYONE),
    # --- the admin (superusers): the site's own pages; each model's pages come from ADMIN_WRITES
    "admin:index": allow(GET=SUPERUSERS, POST=SUPERUSERS),
    "admin:app_list": allow(GET=SUPERUSERS, POST=SUPERUSERS),
    "admin:login": allow(GET=EVERYONE, POST=EVERYONE),
    "admin:logout": allow(POST=SUPERUSERS, ends_at_login=True),
    "admin:password_change": allow(GET=SUPERUSERS, POST=SUPERUSERS),
    "admin:password_change_done": allow(GET=SUPERUSERS),
    "admin:jsi18n": allow(GET=SUPERUSERS),
    # Our models have no get_absolute_url: 404 ("has no absolute URL") for everyone let in.
    "admin:view_on_site": allow(GET=SUPERUSERS, POST=SUPERUSERS, may_answer_404=True),
    # Refused (403) without the query naming a model's autocomplete field; none is configured.
    "admin:autocomplete": allow(),
    "admin:auth_user_password_change": allow(GET=SUPERUSERS, POST=SUPERUSERS),
    # django-otp's TOTP device admin: a device's key as text and as a QR code.
    # OTP_ADMIN_HIDE_SENSITIVE_DATA: nobody, superusers included, reads a device's secret.
    "admin:otp_totp_totpdevice_config": allow(kwargs=_TOTP_DEVICE),
    "admin:otp_totp_totpdevice_qrcode": allow(kwargs=_TOTP_DEVICE),
    # Unnamed: <object_id>/ redirects to its change page; the catch-all answers 404 or a login.
    "admin/*": allow(GET=SUPERUSERS, POST=SUPERUSERS, may_answer_404=True),
    # --- the auditors' read-only site (/audit/): every model read-only, for auditors (and superusers)
    "audit:index": allow(GET=AUDITORS, POST=AUDITORS, read_only=True),
    "audit:app_list": allow(GET=AUDITORS, POST=AUDITORS, read_only=True),
    "audit:login": allow(GET=EVERYONE, POST=EVERYONE),
    "audit:logout": allow(POST=AUDITORS, ends_at_login=True),
    "audit:password_change": allow(GET=AUDITORS, POST=AUDITORS),
    "audit:password_change_done": allow(GET=AUDITORS),
    "audit:jsi18n": allow(GET=AUDITORS),
    "audit:view_on_site": allow(GET=AUDITORS, POST=AUDITORS, read_only=True, may_answer_404=True),
    "audit:verify_audit_trail": allow(GET=AUDITORS),
    "audit:autocomplete": allow(),
    # Django's admin renders a changelist or a history for a POST as for a GET (a changelist POST
    # is an action: /audit/ has none); read_only: nothing may be written even so.
    "audit:*_changelist": allow(GET=AUDITORS, POST=AUDITORS, read_only=True),
    "audit:*_history": allow(GET=AUDITORS, POST=AUDITORS, read_only=True),
    "audit:*_change": allow(GET=AUDITORS),
    "audit:*_add": allow(),
    "audit:*_delete": allow(),
    "audit/*": allow(GET=AUDITORS, POST=AUDITORS, read_only=True, may_answer_404=True),
    "audit-register-csv": allow(GET=AUDITORS),
    "audit-register-xlsx": allow(GET=AUDITORS),
    "audit-evidence-pack": allow(GET=AUDITORS),
    "audit-training-verify": allow(GET=AUDITORS),
}

#: What a superuser may do in ``/admin/`` to each model besides reading it (``add``, ``change``,
#: ``delete``). Everything else there is read-only because it changes only through an audited
#: service (or is written by the system). A model registered with the admin and missing here
#: fails the matrix: add a line.
ADMIN_WRITES: dict[str, str] = {
    "auth.group": "add change delete",
    "auth.user": "add change delete",
    "incidents.customer": "add change delete",
    "incidents.contact": "add change",
    "incidents.product": "add change delete",
    "incidents.supplier": "add change delete",
    "incidents.incident": "add",
    "incidents.affectedcustomer": "",
    "incidents.auditevent": "",
    "incidents.customerauditevent": "",
    "incidents.workerheartbeat": "",
    "incidents.readlogentry": "",
    "incidents.alertsource": "change",
    "incidents.alert": "",
    "incidents.alertthread": "",
    "incidents.customerreport": "",
    "incidents.outgoingemail": "",
    "incidents.idempotencyrecord": "",
    "incidents.apitoken": "",
    "incidents.accountexpiry": "add change delete",
    "incidents.note": "",
    "incidents.auditcheckpoint": "",
    "incidents.securityauditevent": "",
    "incidents.evidencefile": "",
    "incidents.webhooksubscriber": "",
    "incidents.webhookevent": "",
    "incidents.webhookdelivery": "",
    "incidents.webhookattempt": "",
    "incidents.incidentrestriction": "",
    "incidents.incidentrestrictionmember": "",
    # django-axes: records of sign-in attempts, never added here; deleting one unlocks it.
    "axes.accessattempt": "change delete",
    "axes.accesslog": "change delete",
    "axes.accessfailurelog": "change delete",
    # django-otp: a superuser may enrol, change and remove anyone's TOTP device.
    "otp_totp.totpdevice": "add change delete",
    "triage.stakeholdergroup": "add change delete",
    "triage.playbooktemplate": "add change delete",
    "triage.assessment": "",
    "triage.stakeholderalert": "",
    "triage.responsetask": "",
    "postmortems.postmortem": "",
    "postmortems.actionitem": "",
    "postmortems.drill": "",
    "postmortems.postmortemversion": "",
    "postmortems.customersummarystatement": "",
    "postmortems.summaryrelease": "",
    "postmortems.actionitemreminder": "",
    "postmortems.drillparticipant": "",
    "postmortems.course": "add change",
    "postmortems.trainingrecord": "",
    "postmortems.trainingimport": "",
    "postmortems.trainingauditevent": "",
}
for _model, _writes in ADMIN_WRITES.items():
    _prefix = "admin:" + _model.replace(".", "_")
    _may = set(_writes.split())
    # POST to a changelist is an admin action (delete_selected where deleting is allowed).
    ROUTES[f"{_prefix}_changelist"] = allow(GET=SUPERUSERS, POST=SUPERUSERS)
    ROUTES[f"{_prefix}_history"] = allow(GET=SUPERUSERS, POST=SUPERUSERS)
    ROUTES[f"{_prefix}_add"] = allow(GET=SUPERUSERS, POST=SUPERUSERS) if "add" in _may else allow()
    ROUTES[f"{_prefix}_change"] = (
        allow(GET=SUPERUSERS, POST=SUPERUSERS) if "change" in _may else allow(GET=SUPERUSERS)
    )
    ROUTES[f"{_prefix}_delete"] = allow(GET=SUPERUSERS, POST=SUPERUSERS) if "delete" in _may else allow()
# A playbook that incidents have tasks from is never deleted (403, triage.admin); only unused
# ones are. The world's (its first by pk, which the admin_object kwarg takes) has tasks.
ROUTES["admin:triage_playbooktemplate_delete"] = allow()


class MissingEntry(LookupError):
    """A route of the URLconf that ``ROUTES`` does not classify."""


def entry_for(key: str) -> Entry:
    """The entry of route ``key``: its own, else the most specific pattern with ``*`` that
    matches it (``fnmatch``; the one with most characters besides ``*``). Raises
    ``MissingEntry`` saying what to add."""
    if key in ROUTES:
        return ROUTES[key]
    patterns = [name for name in ROUTES if "*" in name and fnmatchcase(key, name)]
    if patterns:
        return ROUTES[max(patterns, key=lambda name: len(name.replace("*", "")))]
    hint = (
        f'add "{key.split(":")[1].rsplit("_", 1)[0].replace("_", ".", 1)}": "<add change delete>" to ADMIN_WRITES'
        if key.startswith("admin:")
        and key.endswith(("_changelist", "_add", "_change", "_delete", "_history"))
        else f'add "{key}": allow(GET=..., POST=...) under its app, naming the roles that may use each method'
    )
    raise MissingEntry(f"Route {key!r} has no entry in tests/route_permissions.py: {hint}.")
