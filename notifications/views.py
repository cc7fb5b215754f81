"""Server-rendered pages for customer notification: clocks, notices, withheld details and
deliveries of one incident (DESIGN.md sections 3 and 4).

Access follows the incident pages (``incidents.views._get_incident_for_user``): a user without
``incidents.view_incident`` gets 404 for everything under an incident; a user who may view but
not write (an auditor) gets 403 on every POST; a role without the notification permission a
form needs (a responder approving, withholding or waiving) gets 403 too. Views validate input
with ``notifications.forms`` and call one service in ``notifications.services``; the services
own the rules. Errors: ``ValidationError`` re-shows the form with its message (400, nothing
changed), ``LifecycleConflict`` shows the page with a message (409), ``ActionForbidden`` is 403.

Pages: the incident's notification page (the same panel the incident page shows, through the
``notification_panel`` inclusion tag, plus room for a form that failed) and one page per
notice (preview per language, fields, approval, deliveries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, Count, Exists, OuterRef, Q, When
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_POST, require_safe

from incidents.exceptions import LifecycleConflict
from incidents.models import AffectedCustomer, Contact, Customer, Incident
from incidents.reversing import url_maker
from incidents.templatetags.breachdesk import display_zone, local, utc
from incidents.views import _add_validation_errors, _get_incident_for_user
from notifications import services
from notifications.forms import (
    AcknowledgeFailureForm,
    ClockRestartForm,
    ClockWaiveForm,
    LateReasonForm,
    NoticeApproveForm,
    NoticeForm,
    TranslationForm,
    WithholdingForm,
)
from notifications.models import (
    CUSTOMER_FIGURE_FIELDS,
    NOTICE_FIELDS,
    Clock,
    Delivery,
    Escalation,
    Notice,
    SkippedRecipient,
    Withholding,
)
from notifications.rendering import FIELD_LABELS, TEXT_FIELD

#: Which form a bound (failed) form replaces on a re-shown page: ``(form name, object id)``.
FormKey = tuple[str, int | None]

#: Permission each write needs besides ``incidents.change_incident`` (checked before any input
#: is read, so a role that may not gets 403 whatever it sent).
CLOCK_PERMISSION = "notifications.change_clock"
DRAFT_PERMISSION = "notifications.add_notice"
EDIT_PERMISSION = "notifications.change_notice"
APPROVE_PERMISSION = "notifications.approve_notice"
WITHHOLD_PERMISSION = "notifications.withhold_notice_field"
TRANSLATE_PERMISSION = "notifications.translate_notice_text"

# Who can be notified: the contacts ``services.notice_approve`` creates deliveries for
# (``Contact.objects.deliverable()``). A subquery, so the panel flags every customer without one
# in one query.
_ACTIVE_ADMIN_CONTACT = Contact.objects.deliverable().filter(customer_id=OuterRef("customer_id"))


def countdown(remaining: timedelta | None) -> str:
    """Time left as ``"71 h 05 min left"``, or ``"overdue by 2 h 00 min"`` when negative;
    ``""`` for ``None`` (a met or waived clock). Whole minutes, rounded down; hours are not
    folded into days so the number compares directly with the 72-hour commitment."""
    if remaining is None:
        return ""
    minutes = int(abs(remaining).total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours} h {minutes:02d} min"
    return f"{text} left" if remaining >= timedelta(0) else f"overdue by {text}"


def _may(user: Any, permission: str) -> bool:
    return user.has_perm("incidents.change_incident") and user.has_perm(permission)


def _incident_for_write(request: HttpRequest, pk: int, permission: str) -> Incident:
    """The incident for a POST: 404 if invisible, 403 for a read-only user or a role without
    ``permission``."""
    incident = _get_incident_for_user(request, pk, write=True)
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"Your role may not do this (needs {permission}).")
    return incident


# --- The notification panel ---------------------------------------------------------------


@dataclass
class ClockRow:
    """One clock as the panel shows it, with the forms an incident manager may use on it."""

    clock: Clock
    status: str
    status_label: str
    countdown: str
    has_contact: bool
    has_failed_delivery: bool
    escalations: list[Escalation]
    late_reason_form: Form | None
    waive_form: Form | None
    restart_form: Form | None
    #: The waive and restart forms of an open clock are fetched when opened (``clock_manage``,
    #: htmx): rendering two forms for each of many customers made the incident page slow.
    manage_later: bool = False
    #: Display text computed once per row in Python (template filters and ``{% url %}`` on each
    #: of fifty rows were most of the panel's rendering time): who must be told, the deadline
    #: in UTC, in the display zone and as ISO 8601 (for the countdown script), the start in
    #: UTC, when the clock was met or recorded as not met (and by whom), and the links.
    party: str = ""
    due_utc: str = ""
    due_local: str = ""
    due_iso: str = ""
    starts_utc: str = ""
    settled: str = ""
    readiness_url: str = ""
    manage_url: str = ""

    @property
    def has_form_errors(self) -> bool:
        return any(
            form is not None and form.errors
            for form in (self.late_reason_form, self.waive_form, self.restart_form)
        )


def _clock_forms(
    row_clock: Clock, status: str, bound: dict[FormKey, Form], *, eager: bool = False
) -> dict[str, Any]:
    """The forms of one clock's row: the late-reason form on a clock met late; the waive and
    restart forms of an open clock only when ``eager`` or one of them failed (else the row
    fetches them when opened: ``manage_later``)."""

    def form(name: str, form_class: type[Form]) -> Form:
        return bound.get((name, row_clock.pk)) or form_class(prefix=f"clock{row_clock.pk}-{name}")

    failed = any((name, row_clock.pk) in bound for name in ("waive", "restart"))
    show_open_forms = row_clock.is_open and (eager or failed)
    return {
        "late_reason_form": form("late_reason", LateReasonForm) if status == Clock.Status.MET_LATE else None,
        "waive_form": form("waive", ClockWaiveForm) if show_open_forms else None,
        "restart_form": form("restart", ClockRestartForm) if show_open_forms else None,
        "manage_later": row_clock.is_open and not show_open_forms,
    }


def _settled_text(clock: Clock) -> str:
    """``met <UTC>``, ``recorded <UTC> by <user>`` (waived), or ``""`` for an open clock."""
    if clock.met_at:
        return f"met {utc(clock.met_at)}"
    if clock.waived_at:
        by = f" by {clock.waived_by.get_username()}" if clock.waived_by else ""
        return f"recorded {utc(clock.waived_at)}{by}"
    return ""


def notification_panel_context(
    incident: Incident, user: Any, *, bound: dict[FormKey, Form] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the "Customer notification" panel shows for ``incident`` to ``user``.

    A fixed number of queries whatever the number of customers (pinned by a test): clocks with
    their customer and whether it has a deliverable contact, their escalations, the notices
    with delivery counts per status, unacknowledged failed deliveries per customer, affected
    customers without a deliverable contact, and the active withholdings. ``bound``: forms that
    failed, shown in place of the empty ones; ``now``: the instant countdowns are computed at
    (default: the current instant).
    """
    bound = bound or {}
    now = now or timezone.now()
    can_change_clock = _may(user, CLOCK_PERMISSION)
    clocks = list(
        Clock.objects.filter(incident=incident)
        .select_related("customer", "waived_by")
        .annotate(has_contact=Exists(_ACTIVE_ADMIN_CONTACT))
        .order_by("due_at", "customer__name", "id")
    )
    failed = list(
        Delivery.objects.filter(
            notice__incident=incident, status=Delivery.Status.FAILED, failure_acknowledged_at__isnull=True
        )
        .values("customer_id", "customer__name", "notice__number")
        .annotate(count=Count("id"))
        .order_by("notice__number", "customer__name")
    )
    failed_customer_ids = {entry["customer_id"] for entry in failed}
    show_local = display_zone().key not in ("UTC", "Etc/UTC")
    manage_url = url_maker("notifications:clock_manage", incident.pk)
    readiness_url = url_maker("contacts:customer_readiness")
    status_labels = dict(Clock.Status.choices)
    # The clocks' escalations in one query, grouped here (cheaper than prefetch_related's
    # ``IN`` list of every clock); none asked for when there is no clock, as before.
    escalations: dict[int, list[Escalation]] = {}
    if clocks:
        for escalation in Escalation.objects.filter(clock__incident=incident).order_by("raised_at", "id"):
            escalations.setdefault(escalation.clock_id, []).append(escalation)
    rows = []
    for clock in clocks:
        status = clock.status_at(now)
        forms: dict[str, Any] = (
            _clock_forms(clock, status, bound)
            if can_change_clock
            else {"late_reason_form": None, "waive_form": None, "restart_form": None}
        )
        rows.append(
            ClockRow(
                clock=clock,
                status=status,
                status_label=status_labels[status],
                countdown=countdown(clock.remaining_at(now)),
                has_contact=clock.has_contact,
                has_failed_delivery=clock.customer_id in failed_customer_ids,
                escalations=escalations.get(clock.pk, []),
                **forms,
                party=(clock.customer.name if clock.customer else "") or str(clock.get_kind_display()),
                due_utc=utc(clock.due_at),
                due_local=local(clock.due_at) if show_local else "",
                due_iso=timezone.localtime(clock.due_at).isoformat(),
                starts_utc=utc(clock.starts_at),
                settled=_settled_text(clock),
                readiness_url=readiness_url(clock.customer_id) if clock.customer_id else "",
                manage_url=manage_url(clock.pk),
            )
        )
    notices = list(
        Notice.objects.filter(incident=incident)
        .select_related("approved_by", "created_by")
        .annotate(
            **{
                f"deliveries_{status}": Count("deliveries", filter=Q(deliveries__status=status))
                for status in Delivery.Status.values
            }
        )
        .order_by("number")
    )
    without_contact = list(
        AffectedCustomer.objects.filter(incident=incident)
        .annotate(has_contact=Exists(_ACTIVE_ADMIN_CONTACT))
        .filter(has_contact=False)
        .order_by("customer__name")
        .values("customer_id", "customer__name")
    )
    withholdings = list(
        Withholding.objects.filter(incident=incident, released_at__isnull=True)
        .select_related("created_by")
        .order_by("field")
    )
    has_initial = any(n.kind == Notice.Kind.INITIAL and n.status == Notice.Status.APPROVED for n in notices)
    draft_form = bound.get(("draft", None)) or NoticeForm(
        prefix="draft", initial={"kind": Notice.Kind.UPDATE if has_initial else Notice.Kind.INITIAL}
    )
    labels = {name: str(label) for name, label in FIELD_LABELS.items()}
    return {
        "incident": incident,
        "now": now,
        "display_time_zone": display_zone().key,
        "show_local": display_zone().key not in ("UTC", "Etc/UTC"),
        "clock_rows": rows,
        "notices": notices,
        "failed_deliveries": failed,
        "customers_without_contact": without_contact,
        "withholdings": [(labels.get(w.field, w.field), w) for w in withholdings],
        "can_change_clock": can_change_clock,
        "can_draft": _may(user, DRAFT_PERMISSION),
        "can_withhold": _may(user, WITHHOLD_PERMISSION),
        "draft_form": draft_form,
        "withholding_form": bound.get(("withhold", None)) or WithholdingForm(prefix="withhold"),
        "open_draft_form": ("draft", None) in bound,
        "open_withholding_form": ("withhold", None) in bound,
    }


def _render_notification_page(
    request: HttpRequest, incident: Incident, *, status: int = 200, bound: dict[FormKey, Form] | None = None
) -> HttpResponse:
    context = notification_panel_context(incident, request.user, bound=bound)
    return render(request, "notifications/incident_notification.html", context, status=status)


@login_required
@require_safe
def incident_notification(request: HttpRequest, pk: int) -> HttpResponse:
    """The incident's customer-notification page: deadlines with countdowns, notices, withheld
    details and the forms the user may use. 404 without ``incidents.view_incident``."""
    incident = _get_incident_for_user(request, pk)
    return _render_notification_page(request, incident)


def _submit(
    request: HttpRequest,
    form: Form,
    action: Callable[[dict[str, Any]], str],
    *,
    success_url: str | Callable[[], str],
    render_failure: Callable[[int], HttpResponse],
) -> HttpResponse:
    """Validate ``form`` and run ``action(cleaned_data)`` (one service call returning the
    success message). Success: redirect to ``success_url`` (or what it returns, when callable:
    a URL known only after the service ran) with the message. Bad input or a
    service's ``ValidationError``: ``render_failure(400)`` with the bound form. A
    ``LifecycleConflict``: ``render_failure(409)`` with the reason as a message."""
    if form.is_valid():
        try:
            message = action(form.cleaned_data)
        except ValidationError as error:
            _add_validation_errors(form, error)
        except LifecycleConflict as conflict:
            messages.error(request, str(conflict))
            return render_failure(409)
        else:
            messages.success(request, message)
            return redirect(success_url() if callable(success_url) else success_url)
    return render_failure(400)


def _panel_url(incident: Incident) -> str:
    return reverse("incidents:incident_detail", args=[incident.pk]) + "#customer-notification"


# --- Clocks -------------------------------------------------------------------------------


@login_required
@require_safe
def clock_manage(request: HttpRequest, pk: int, clock_pk: int) -> HttpResponse:
    """The waive and restart forms of one open clock: the fragment the panel's "Manage the
    deadline" row fetches when opened (htmx), or a page of its own without JavaScript. Needs
    ``notifications.change_clock`` (403); a met or waived clock has none (409)."""
    incident = _incident_for_write(request, pk, CLOCK_PERMISSION)
    clock = _clock_of(incident, clock_pk)
    if not clock.is_open:
        messages.error(request, "This deadline is settled: it can no longer be waived or moved.")
        return _render_notification_page(request, incident, status=409)
    row = _clock_forms(clock, clock.status_at(), {}, eager=True)
    context = {"incident": incident, "clock": clock, "row": row, "display_time_zone": display_zone().key}
    htmx = getattr(request, "htmx", False)  # django_htmx.middleware.HtmxMiddleware
    template = "notifications/_clock_forms.html" if htmx else "notifications/clock_manage.html"
    return render(request, template, context)


def _clock_of(incident: Incident, clock_pk: int) -> Clock:
    return get_object_or_404(Clock.objects.select_related("customer"), pk=clock_pk, incident=incident)


def _clock_form_view(
    request: HttpRequest,
    pk: int,
    clock_pk: int,
    name: str,
    form_class: type[Form],
    action: Callable[[Clock, dict[str, Any]], str],
) -> HttpResponse:
    incident = _incident_for_write(request, pk, CLOCK_PERMISSION)
    clock = _clock_of(incident, clock_pk)
    form = form_class(request.POST, prefix=f"clock{clock.pk}-{name}")
    return _submit(
        request,
        form,
        lambda data: action(clock, data),
        success_url=_panel_url(incident),
        render_failure=lambda status: _render_notification_page(
            request, Incident.objects.get(pk=pk), status=status, bound={(name, clock.pk): form}
        ),
    )


@login_required
@require_POST
def clock_late_reason(request: HttpRequest, pk: int, clock_pk: int) -> HttpResponse:
    """Record why a clock was met late (``services.clock_record_late_reason``). A clock that was
    not met late: 409. Needs ``notifications.change_clock``."""

    def action(clock: Clock, data: dict[str, Any]) -> str:
        services.clock_record_late_reason(clock=clock, actor=request.user, reason=data["reason"])
        return f"Reason for the late notice to {clock.party_name} recorded."

    return _clock_form_view(request, pk, clock_pk, "late_reason", LateReasonForm, action)


@login_required
@require_POST
def clock_waive(request: HttpRequest, pk: int, clock_pk: int) -> HttpResponse:
    """Acknowledge that a clock cannot be met, with a reason (``services.clock_waive``). A clock
    no longer open: 409. Needs ``notifications.change_clock``."""

    def action(clock: Clock, data: dict[str, Any]) -> str:
        services.clock_waive(clock=clock, actor=request.user, reason=data["reason"])
        return f"The deadline for {clock.party_name} is recorded as not met, with the reason."

    return _clock_form_view(request, pk, clock_pk, "waive", ClockWaiveForm, action)


@login_required
@require_POST
def clock_restart(request: HttpRequest, pk: int, clock_pk: int) -> HttpResponse:
    """Move an open clock's start, with a reason (``services.clock_restart``); the start is read
    in ``settings.DISPLAY_TIME_ZONE``. A met or waived clock: 409. Needs
    ``notifications.change_clock``."""

    def action(clock: Clock, data: dict[str, Any]) -> str:
        moved = services.clock_restart(
            clock=clock, actor=request.user, starts_at=data["starts_at"], reason=data["reason"]
        )
        return f"The deadline for {clock.party_name} now starts {moved.starts_at:%Y-%m-%d %H:%M} UTC."

    return _clock_form_view(request, pk, clock_pk, "restart", ClockRestartForm, action)


# --- Withheld details ---------------------------------------------------------------------


@login_required
@require_POST
def withholding_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Withhold a breach field from notices (``services.withholding_create``); the review date
    is read in ``settings.DISPLAY_TIME_ZONE``. Already withheld: 409. Needs
    ``notifications.withhold_notice_field``."""
    incident = _incident_for_write(request, pk, WITHHOLD_PERMISSION)
    form = WithholdingForm(request.POST, prefix="withhold")

    def action(data: dict[str, Any]) -> str:
        withholding = services.withholding_create(incident=incident, actor=request.user, **data)
        return f"“{FIELD_LABELS[withholding.field]}” is withheld from notices approved from now on."

    return _submit(
        request,
        form,
        action,
        success_url=_panel_url(incident),
        render_failure=lambda status: _render_notification_page(
            request, incident, status=status, bound={("withhold", None): form}
        ),
    )


@login_required
@require_POST
def withholding_release(request: HttpRequest, pk: int, withholding_pk: int) -> HttpResponse:
    """Release a withheld field (``services.withholding_release``): the next notice carries it.
    Already released: 409. Needs ``notifications.withhold_notice_field``."""
    incident = _incident_for_write(request, pk, WITHHOLD_PERMISSION)
    withholding = get_object_or_404(Withholding, pk=withholding_pk, incident=incident)
    try:
        services.withholding_release(withholding=withholding, actor=request.user)
    except LifecycleConflict as conflict:
        messages.error(request, str(conflict))
        return _render_notification_page(request, incident, status=409)
    messages.success(request, f"“{FIELD_LABELS[withholding.field]}” released: the next notice carries it.")
    return redirect(_panel_url(incident))


# --- Notices ------------------------------------------------------------------------------


def _notice_url(notice: Notice, language: str | None = None) -> str:
    url = reverse("notifications:notice_detail", args=[notice.incident_id, notice.number])
    return f"{url}?language={language}" if language else url


@login_required
@require_POST
def notice_draft(request: HttpRequest, pk: int) -> HttpResponse:
    """Draft the incident's next notice (``services.notice_draft``) and open it. An update
    before any initial notice: 400 with the reason. Needs ``notifications.add_notice``."""
    incident = _incident_for_write(request, pk, DRAFT_PERMISSION)
    form = NoticeForm(request.POST, prefix="draft")
    drafted: list[Notice] = []

    def action(data: dict[str, Any]) -> str:
        notice = services.notice_draft(incident=incident, actor=request.user, **data)
        drafted.append(notice)
        return f"Notice {notice.number} drafted. Check the preview, then approve it."

    return _submit(
        request,
        form,
        action,
        success_url=lambda: _notice_url(drafted[0]),
        render_failure=lambda status: _render_notification_page(
            request, incident, status=status, bound={("draft", None): form}
        ),
    )


@dataclass
class Audience:
    """Who approving a draft would send it to: the target customers, how many deliverable
    administrative contacts they have, and the targets with none (they get an escalation)."""

    customers: int
    contacts: int
    without_contact: list[str]


def _audience(notice: Notice) -> Audience:
    """The recipients ``services.notice_approve`` would create deliveries for right now."""
    targets = services.notice_recipients(notice)
    counts = dict(
        Contact.objects.deliverable()
        .filter(customer_id__in=[t.customer_id for t in targets])
        .values("customer_id")
        .annotate(count=Count("id"))
        .values_list("customer_id", "count")
    )
    return Audience(
        customers=len(targets),
        contacts=sum(counts.values()),
        without_contact=[t.customer.name for t in targets if not counts.get(t.customer_id)],
    )


def _field_rows(
    notice: Notice, figures: dict[str, Any] | None = None, changed_figures: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Per breach field: its label, whether it is known, withheld (and why), and whether it
    changed since the previous approved notice. An approved notice answers from its snapshot;
    a draft from the incident's facts and withholdings now (what approval would snapshot).
    A per-customer figure (``CUSTOMER_FIGURE_FIELDS``) is known as the previewed customer's
    message states it: from ``figures``, that customer's own (``RenderedMessage.figures``),
    when given; else from the incident-wide figure. Such a figure is "changed" when it changed
    for that customer (``changed_figures``, ``RenderedMessage.changed_figures``)."""
    content, withheld, changes, _translations = services._draft_state(notice)
    reasons = dict(Withholding.Reason.choices)

    def known(name: str) -> bool:
        if figures is not None and name in CUSTOMER_FIGURE_FIELDS:
            return figures.get(name) is not None
        return content.get(name) is not None

    return [
        {
            "name": name,
            "label": str(FIELD_LABELS[name]),
            "known": known(name),
            "per_customer": name in CUSTOMER_FIGURE_FIELDS,
            "withheld": reasons.get(withheld[name], withheld[name]) if name in withheld else None,
            "changed": (
                name in changed_figures
                if figures is not None and name in CUSTOMER_FIGURE_FIELDS
                else name in changes and name not in withheld
            ),
        }
        for name in NOTICE_FIELDS
    ]


def _language_choice(request: HttpRequest, default: str = "en") -> tuple[str, str | None]:
    """The preview language from ``?language=`` (absent: ``default``) and an error for an
    unknown one (then English)."""
    codes = [code for code, _name in settings.LANGUAGES]
    language = request.GET.get("language") or default
    if language not in codes:
        return "en", f"No preview language “{language}”; choose one of {', '.join(codes)}."
    return language, None


#: How many deliveries the notice page lists (failed first); the API lists them all.
DELIVERIES_SHOWN = 200


def _preview_customer(request: HttpRequest, incident: Incident) -> tuple[Customer | None, str | None]:
    """The affected customer named by ``?customer=`` (account reference) and an error for one
    that is not affected (then the first affected customer)."""
    given = (request.GET.get("customer") or "").strip()
    if not given:
        return None, None
    affected = (
        AffectedCustomer.objects.filter(incident=incident, customer__account_reference=given)
        .select_related("customer")
        .first()
    )
    if affected is None:
        return None, f"“{given}” is not an affected customer of {incident.reference}; showing the first."
    return affected.customer, None


def _render_notice_page(
    request: HttpRequest,
    incident: Incident,
    notice: Notice,
    *,
    status: int = 200,
    bound: dict[FormKey, Form] | None = None,
) -> HttpResponse:
    bound = bound or {}
    user = request.user
    preview_customer, customer_error = _preview_customer(request, incident)
    shown = preview_customer or services.notice_preview_customer(incident)
    # Without ?language=, the language the previewed customer's contacts receive.
    customer_languages = services.customer_notice_languages(shown) if shown else []
    language, language_error = _language_choice(
        request, customer_languages[0] if customer_languages else "en"
    )
    if language_error or customer_error:
        status = 400
    notice = Notice.objects.select_related("incident", "created_by", "approved_by").get(pk=notice.pk)
    is_draft = notice.status == Notice.Status.DRAFT
    delivery_counts = dict.fromkeys(Delivery.Status.values, 0)
    for row in Delivery.objects.filter(notice=notice).values("status").annotate(count=Count("id")):
        delivery_counts[row["status"]] = row["count"]
    deliveries = list(
        Delivery.objects.filter(notice=notice)
        .select_related("customer")
        .defer("body_text", "body_html")
        .order_by(
            Case(When(status=Delivery.Status.FAILED, then=0), default=1),
            "customer__name",
            "address",
            "id",
        )[:DELIVERIES_SHOWN]
    )
    failed_rows = Delivery.objects.filter(notice=notice, status=Delivery.Status.FAILED).select_related(
        "customer"
    )
    by_customer: dict[int, list[Delivery]] = {}
    for delivery in failed_rows:
        by_customer.setdefault(delivery.customer_id, []).append(delivery)
    can_acknowledge = _may(user, CLOCK_PERMISSION)
    open_clock_customers = set(
        Clock.objects.filter(
            incident=incident, met_at__isnull=True, waived_at__isnull=True, customer_id__in=list(by_customer)
        ).values_list("customer_id", flat=True)
    )
    not_failed = set(
        Delivery.objects.filter(notice=notice, customer_id__in=list(by_customer))
        .exclude(status=Delivery.Status.FAILED)
        .values_list("customer_id", flat=True)
    )
    unreachable = [
        {
            "customer": rows[0].customer,
            "count": len(rows),
            "form": bound.get(("acknowledge", customer_id))
            or AcknowledgeFailureForm(prefix=f"ack{customer_id}"),
            "acknowledged": all(row.failure_acknowledged_at for row in rows),
            "clock_open": customer_id in open_clock_customers,
        }
        for customer_id, rows in by_customer.items()
        if customer_id not in not_failed
    ]
    can_approve = is_draft and _may(user, APPROVE_PERMISSION)
    audience = _audience(notice) if can_approve else None
    approve_form = bound.get(("approve", None))
    if approve_form is None and audience is not None:
        approve_form = NoticeApproveForm(
            prefix="approve", initial={"customers": audience.customers, "contacts": audience.contacts}
        )
    can_edit = is_draft and _may(user, EDIT_PERMISSION)
    previous = (
        Notice.objects.filter(incident=incident, status=Notice.Status.APPROVED, number__lt=notice.number)
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )
    preview = services.notice_preview(notice=notice, language=language, customer=preview_customer)
    can_translate = is_draft and _may(user, TRANSLATE_PERMISSION)
    texts = services.notice_source_texts(incident) if is_draft else {}
    translate_form = None
    if can_translate and language != settings.NOTICE_SOURCE_LANGUAGE and texts:
        translate_form = bound.get(("translate", None)) or TranslationForm.for_texts(
            texts, services.translations_for_language(incident, language), language=language
        )
    progress = services.notice_delivery_progress(notice) if not is_draft else None
    skipped = list(
        SkippedRecipient.objects.filter(notice=notice)
        .select_related("customer")
        .order_by("customer__name", "address")
    )
    context = {
        "incident": incident,
        "notice": notice,
        "notice_label": _label(notice),
        "is_draft": is_draft,
        "language": language,
        "language_error": language_error,
        "customer_error": customer_error,
        "languages": settings.LANGUAGES,
        "source_language": settings.NOTICE_SOURCE_LANGUAGE,
        "preview": preview,
        "preview_customer_reference": preview_customer.account_reference if preview_customer else "",
        "customer_languages": customer_languages,
        "preview_customers": list(
            AffectedCustomer.objects.filter(incident=incident)
            .order_by("customer__name")
            .values_list("customer__account_reference", "customer__name")[:CUSTOMER_CHOICES]
        ),
        "untranslated": [services.TRANSLATABLE_LABELS[name] for name in preview.untranslated],
        "untranslated_fields": {TEXT_FIELD[name] for name in preview.untranslated},
        "field_rows": _field_rows(notice, preview.figures, preview.changed_figures),
        "previous_number": previous,
        "deliveries": deliveries,
        "deliveries_shown": DELIVERIES_SHOWN,
        "skipped_recipients": skipped,
        "delivery_counts": delivery_counts,
        "delivery_total": sum(delivery_counts.values()),
        "progress": progress,
        "unreachable": unreachable,
        "can_acknowledge": can_acknowledge,
        "can_edit": can_edit,
        "edit_form": bound.get(("edit", None))
        or (NoticeForm.for_notice(notice, prefix="notice") if can_edit else None),
        "can_approve": can_approve,
        "can_translate": can_translate,
        "translate_form": translate_form,
        "incident_may_notify": services.notice_may_go_out(notice, incident),
        "audience": audience,
        "approve_form": approve_form,
        "display_time_zone": display_zone().key,
        "show_local": display_zone().key not in ("UTC", "Etc/UTC"),
    }
    return render(request, "notifications/notice_detail.html", context, status=status)


#: How many affected customers the preview's customer choice suggests.
CUSTOMER_CHOICES = 200


def _label(notice: Notice) -> str:
    if notice.kind == Notice.Kind.UPDATE:
        return f"Update {services.notice_update_number(notice)}"
    return notice.get_kind_display()


def _notice_of(incident: Incident, number: int) -> Notice:
    return get_object_or_404(Notice, incident=incident, number=number)


# The preview's sandboxed frame (srcdoc) inherits the page's content security policy; an email's
# layout is in style attributes, so this page alone allows inline styles (never scripts).
_PREVIEW_POLICY = cast(
    "dict[str, list[str]]", {**settings.SECURE_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE]}
)


@csp_override(_PREVIEW_POLICY)
@login_required
@require_safe
def notice_detail(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """One notice: the message as customers get it in ``?language=`` (en, de, fr, es, ja;
    subject, plain text, and the HTML part in a sandboxed frame), which breach fields are
    unknown, withheld or changed, its deliveries, and the forms the user may use (edit a draft,
    approve, acknowledge failed deliveries). An unknown language: 400 with the English preview.
    404 without ``incidents.view_incident``."""
    incident = _get_incident_for_user(request, pk)
    return _render_notice_page(request, incident, _notice_of(incident, number))


@login_required
@require_POST
def notice_edit(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Change a draft's written parts (``services.notice_update_draft``). An approved notice:
    409 (immutable). Needs ``notifications.change_notice``."""
    incident = _incident_for_write(request, pk, EDIT_PERMISSION)
    notice = _notice_of(incident, number)
    form = NoticeForm.for_notice(notice, request.POST, prefix="notice")

    def action(data: dict[str, Any]) -> str:
        changes = form.service_changes()
        if not changes:
            return "Nothing changed."
        services.notice_update_draft(notice=notice, actor=request.user, changes=changes)
        return f"Notice {notice.number} saved (changed: {', '.join(sorted(changes)).replace('_', ' ')})."

    return _submit(
        request,
        form,
        action,
        success_url=_notice_url(notice),
        render_failure=lambda status: _render_notice_page(
            request, incident, notice, status=status, bound={("edit", None): form}
        ),
    )


@login_required
@require_POST
def notice_approve(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Approve a draft and send it (``services.notice_approve``) after the person confirmed the
    audience shown: if the number of customers or contacts changed since, the page shows the new
    numbers to confirm again (409). Already approved, incident not declared, or nobody waiting:
    409. Needs ``notifications.approve_notice``."""
    incident = _incident_for_write(request, pk, APPROVE_PERMISSION)
    notice = _notice_of(incident, number)
    form = NoticeApproveForm(request.POST, prefix="approve")

    def failure(status: int) -> HttpResponse:
        return _render_notice_page(request, incident, notice, status=status, bound={("approve", None): form})

    if form.is_valid() and notice.status == Notice.Status.DRAFT:
        audience = _audience(notice)
        confirmed = (form.cleaned_data["customers"], form.cleaned_data["contacts"])
        if confirmed != (audience.customers, audience.contacts):
            form = NoticeApproveForm(
                prefix="approve", initial={"customers": audience.customers, "contacts": audience.contacts}
            )
            messages.error(
                request,
                f"The recipients changed since the page was shown: now {audience.customers} customers "
                f"and {audience.contacts} contacts. Check and confirm again.",
            )
            return failure(409)

    def action(data: dict[str, Any]) -> str:
        approved = services.notice_approve(notice=notice, actor=request.user)
        return (
            f"Notice {approved.number} approved. A worker is creating its {data['contacts']} deliveries "
            "and sending them; this page shows the progress."
        )

    return _submit(request, form, action, success_url=_notice_url(notice), render_failure=failure)


@login_required
@require_POST
def notice_translate(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Give the free texts of the incident's notices in one language
    (``services.translation_set``, one call per text that changed; an emptied text removes its
    translation). Redirects to the draft's preview in that language. Needs
    ``notifications.translate_notice_text`` (incident managers)."""
    incident = _incident_for_write(request, pk, TRANSLATE_PERMISSION)
    notice = _notice_of(incident, number)
    texts = services.notice_source_texts(incident)
    language = request.POST.get("translate-language", "")
    form = TranslationForm.for_texts(
        texts, services.translations_for_language(incident, language), language=language, data=request.POST
    )

    def action(data: dict[str, Any]) -> str:
        changed = form.service_changes()
        for field, text in changed.items():
            services.translation_set(
                incident=incident, actor=request.user, field=field, language=data["language"], text=text
            )
        if not changed:
            return "Nothing changed."
        return f"Translations into {data['language']} saved ({len(changed)} text{'s' if len(changed) != 1 else ''})."

    return _submit(
        request,
        form,
        action,
        success_url=lambda: _notice_url(notice, form.cleaned_data["language"]) + "#preview",
        render_failure=lambda status: _render_notice_page(
            request, incident, notice, status=status, bound={("translate", None): form}
        ),
    )


@login_required
@require_POST
def deliveries_acknowledge_failure(
    request: HttpRequest, pk: int, number: int, customer_pk: int
) -> HttpResponse:
    """Acknowledge that a customer of this notice cannot be reached
    (``services.deliveries_acknowledge_failure``): its failed deliveries are marked and its
    clock waived with the reason. A customer this notice was not sent to: 404. Needs
    ``notifications.change_clock``."""
    incident = _incident_for_write(request, pk, CLOCK_PERMISSION)
    notice = _notice_of(incident, number)
    if not Delivery.objects.filter(notice=notice, customer_id=customer_pk).exists():
        raise Http404("This notice was not sent to that customer.")
    customer = Customer.objects.get(pk=customer_pk)
    form = AcknowledgeFailureForm(request.POST, prefix=f"ack{customer.pk}")

    def action(data: dict[str, Any]) -> str:
        clock = services.deliveries_acknowledge_failure(
            incident=incident, customer=customer, actor=request.user, reason=data["reason"]
        )
        if clock is None:
            return f"Failed deliveries to {customer.name} acknowledged; its deadline was already settled."
        return f"Failed deliveries to {customer.name} acknowledged; its deadline is recorded as not met."

    return _submit(
        request,
        form,
        action,
        success_url=_notice_url(notice),
        render_failure=lambda status: _render_notice_page(
            request, incident, notice, status=status, bound={("acknowledge", customer.pk): form}
        ),
    )
