"""The dashboard's pages: the due-next board (the home page), the metrics, customers and contacts.

Access: every page needs a login. The board and the metrics need ``incidents.view_incident``
(without it: 403 with the reason); customers and contacts ``incidents.view_customer`` to read
(403 on the list, 404 on a customer) and ``add_``/``change_customer`` or ``_contact`` to write
(403 on any POST or form without it; the read-only auditor sees no form). Views validate input
with ``dashboard.forms`` and call one service; bad input re-shows the form with its errors (400)
and stores nothing.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from dashboard import metrics as metrics_module
from dashboard.board import SORTS, BadCursor, board_page
from dashboard.forms import (
    BoardFilterForm,
    ContactForm,
    CustomerForm,
    CustomerImportForm,
    MetricsPeriodForm,
    MyWorkForm,
)
from incidents import services
from incidents.heartbeat import worker_heartbeat
from incidents.management.commands.import_customers import (
    COLUMNS,
    upsert_customer_rows,
    validate_customer_rows,
)
from incidents.models import AffectedCustomer, Contact, Customer
from incidents.selectors import visible_related
from incidents.templatetags.breachdesk import display_zone
from notifications.models import Delivery
from notifications.reminders import due_items_for, reminder_sources

# --- The board ----------------------------------------------------------------------------


def _require_incidents(request: HttpRequest) -> None:
    if not request.user.has_perm("incidents.view_incident"):
        raise PermissionDenied("Your role may not see incidents, so it has no board and no metrics.")


@login_required
@require_safe
def board(request: HttpRequest) -> HttpResponse:
    """The due-next board (``dashboard.board``): filters, search and sort from the query string,
    ``?cursor=`` for the next page. An htmx request (the page's refresh every minute) gets the
    rows only. A bad filter or cursor: 400 with the reason."""
    _require_incidents(request)
    form = BoardFilterForm(request.GET or None)
    context: dict[str, Any] = {
        "form": form,
        "rows": [],
        "next_cursor": None,
        "is_first_page": not request.GET.get("cursor"),
        "error": None,
        "now": timezone.now(),
        "sorts": SORTS,
        "display_time_zone": display_zone().key,
        "heartbeat": worker_heartbeat(),
    }
    status = 200
    filters: dict[str, Any] = {}
    if form.is_bound:
        if form.is_valid():
            filters = form.cleaned_data
        else:
            context["error"] = "Some filters are not valid; see below."
            status = 400
    sort = filters.get("sort") or "due"
    context["sort"] = sort
    if status == 200:
        try:
            page = board_page(
                filters, viewer=request.user, sort=sort, cursor=request.GET.get("cursor") or None
            )
        except BadCursor as error:
            context["error"] = str(error)
            status = 400
        else:
            context["rows"] = page.rows
            context["next_cursor"] = page.next_cursor
    htmx = getattr(request, "htmx", False)  # django_htmx.middleware.HtmxMiddleware
    template = "dashboard/_board_rows.html" if htmx else "dashboard/board.html"
    return render(request, template, context, status=status)


# --- My work ------------------------------------------------------------------------------


@login_required
@require_safe
def my_work(request: HttpRequest) -> HttpResponse:
    """What is due for the signed-in user (``/my-work/``): every dated item they own (playbook
    tasks, withholding reviews, action items, training expiry; ``settings.REMINDER_SOURCES``)
    that is overdue or falls due within ``?days=`` days (default 30), overdue first, then by due
    time. Any signed-in user sees only their own items. A bad ``days``: 400 with the reason,
    above the list for the default 30 days (overdue items are always listed)."""
    form = MyWorkForm(request.GET or None)
    days = 30
    status = 200
    if form.is_bound:
        if form.is_valid():
            days = form.cleaned_data["days"] or days
        else:
            status = 400  # the error is shown above the default horizon's list
    now = timezone.now()
    items = due_items_for(request.user, now=now, horizon=timedelta(days=days))
    labels = {source.name: source.label for source in reminder_sources()}
    context = {
        "form": form,
        "days": days,
        "now": now,
        "rows": [
            {"item": item, "label": labels[item.source], "overdue": item.is_overdue(now)} for item in items
        ],
    }
    return render(request, "dashboard/my_work.html", context, status=status)


# --- Metrics ------------------------------------------------------------------------------


def _csv_response(figures: metrics_module.Metrics) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"breachdesk-metrics-{figures.start:%Y-%m}-to-{figures.end:%Y-%m}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "month",
            "incidents",
            "triaged",
            "time_to_triage_median_hours",
            "declared",
            "time_to_declare_median_hours",
            "notified",
            "time_to_notify_median_hours",
            "clocks_settled",
            "clocks_on_time",
            "notified_within_window_share",
        ]
    )

    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    for m in figures.months:
        writer.writerow(
            [
                m.month.strftime("%Y-%m"),
                m.incidents,
                m.triage_count,
                cell(m.triage_median_hours),
                m.declare_count,
                cell(m.declare_median_hours),
                m.notify_count,
                cell(m.notify_median_hours),
                m.clocks_settled,
                m.clocks_on_time,
                cell(None if m.on_time_share is None else round(m.on_time_share, 4)),
            ]
        )
    for label, counts in (
        ("severity", figures.by_severity),
        ("scenario", figures.by_scenario),
        ("detection_source", figures.by_detection_source),
    ):
        writer.writerow([])
        writer.writerow([label, "incidents"])
        for value, count in counts.items():
            writer.writerow([value or "not recorded", count])
    return response


def period_from(request: HttpRequest) -> tuple[MetricsPeriodForm, metrics_module.Metrics | None]:
    """The metrics of the period the query string names (``from``, ``to``, ``drills``), or
    ``None`` with the form's errors."""
    form = MetricsPeriodForm(request.GET)
    if not form.is_valid():
        return form, None
    default_start, default_end = metrics_module.default_period()
    start = form.cleaned_data["from_month"] or default_start
    end = form.cleaned_data["to_month"] or max(default_end, start)
    if (end.year - start.year) * 12 + end.month - start.month > 240:
        form.add_error(None, "Ask for at most 20 years at once.")
        return form, None
    return form, metrics_module.metrics_for_period(
        start=start, end=end, include_drills=form.cleaned_data["drills"]
    )


@login_required
@require_safe
def metrics_page(request: HttpRequest) -> HttpResponse:
    """Response metrics per month with charts and tables (``dashboard.metrics``);
    ``?format=csv`` downloads the same numbers. ``?from=YYYY-MM&to=YYYY-MM`` (default: the last
    12 months), ``?drills=1`` to count drills. A bad period: 400 with the reason."""
    _require_incidents(request)
    form, figures = period_from(request)
    if figures is None:
        return render(request, "dashboard/metrics.html", {"form": form, "figures": None}, status=400)
    if request.GET.get("format") == "csv":
        return _csv_response(figures)
    if request.GET.get("format") not in (None, "", "html"):
        return render(
            request,
            "dashboard/metrics.html",
            {"form": form, "figures": None, "error": "format must be csv or html."},
            status=400,
        )
    query = request.GET.copy()
    query["format"] = "csv"
    context = {
        "form": form,
        "figures": figures,
        "csv_query": query.urlencode(),
        "refresh_minutes": metrics_module.refresh_interval_minutes(),
        "chart_data": metrics_module.as_dict(figures),
    }
    return render(request, "dashboard/metrics.html", context)


# --- Customers and contacts ---------------------------------------------------------------

#: Customers per page of the list.
CUSTOMER_PAGE_SIZE = 50


def _require(request: HttpRequest, permission: str, reason: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(reason)


def _customer_for(request: HttpRequest, pk: int) -> Customer:
    """The customer ``pk``; 404 when it does not exist or the user may not see customers."""
    if not request.user.has_perm("incidents.view_customer"):
        raise Http404("No such customer.")
    return get_object_or_404(Customer, pk=pk)


@login_required
@require_safe
def customer_list(request: HttpRequest) -> HttpResponse:
    """Customers by name, searched by ``?q=`` (name or account reference), ``?after=`` the last
    name and id of the previous page (keyset, no COUNT). 403 without ``view_customer``."""
    _require(request, "incidents.view_customer", "Your role may not see customers.")
    text = (request.GET.get("q") or "").strip()
    if "\x00" in text:
        return render(
            request,
            "dashboard/customer_list.html",
            {"customers": [], "q": "", "error": "Search text cannot contain NUL."},
            status=400,
        )
    customers = Customer.objects.annotate(
        active_contacts=Count(
            "contacts", filter=Q(contacts__is_active=True, contacts__role=Contact.Role.ADMINISTRATIVE)
        )
    ).order_by("name", "id")
    if text:
        customers = customers.filter(Q(name__icontains=text) | Q(account_reference__icontains=text))
    after = request.GET.get("after", "")
    if after:
        name, _, pk = after.rpartition("|")
        if not pk.isdigit():
            return render(
                request,
                "dashboard/customer_list.html",
                {"customers": [], "q": text, "error": "That page link is not valid; start again."},
                status=400,
            )
        customers = customers.filter(Q(name__gt=name) | Q(name=name, pk__gt=int(pk)))
    page = list(customers[: CUSTOMER_PAGE_SIZE + 1])
    next_after = None
    if len(page) > CUSTOMER_PAGE_SIZE:
        page = page[:CUSTOMER_PAGE_SIZE]
        next_after = f"{page[-1].name}|{page[-1].pk}"
    context = {
        "customers": page,
        "q": text,
        "next_after": next_after,
        "is_first_page": not after,
        "can_add": request.user.has_perm("incidents.add_customer"),
    }
    return render(request, "dashboard/customer_list.html", context)


def _save_with_form(form: BaseForm, save: Any) -> Any:
    """Run ``save()`` (one service call) and put a ``ValidationError`` on the form; returns the
    saved row or ``None``."""
    try:
        return save()
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            for name, errors in error.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            form.add_error(None, error)
    return None


@login_required
def customer_new(request: HttpRequest) -> HttpResponse:
    """Create a customer (``services.customer_save``); needs ``incidents.add_customer``."""
    _require(request, "incidents.add_customer", "Your role may not add customers.")
    form = CustomerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        customer = _save_with_form(
            form, lambda: services.customer_save(actor=request.user, customer=form.instance)
        )
        if customer is not None:
            messages.success(request, f"{customer.name} created. Add its administrative contacts next.")
            return redirect("dashboard:customer_detail", pk=customer.pk)
    status = 400 if form.errors else 200
    return render(request, "dashboard/customer_form.html", {"form": form}, status=status)


@login_required
def customer_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a customer (``services.customer_save``); needs ``incidents.change_customer``."""
    customer = _customer_for(request, pk)
    _require(request, "incidents.change_customer", "Your role may view this customer but not change it.")
    form = CustomerForm(request.POST or None, instance=customer)
    if request.method == "POST" and form.is_valid():
        saved = _save_with_form(
            form,
            lambda: services.customer_save(
                actor=request.user, customer=form.instance, changed=form.changed_data
            ),
        )
        if saved is not None:
            messages.success(request, f"Saved (changed: {', '.join(form.changed_data) or 'nothing'}).")
            return redirect("dashboard:customer_detail", pk=pk)
    status = 400 if form.errors else 200
    stored = Customer.objects.get(pk=pk)
    return render(request, "dashboard/customer_form.html", {"form": form, "customer": stored}, status=status)


#: Incidents and notices shown on a customer's page (newest first).
CUSTOMER_HISTORY_SIZE = 50


@login_required
@require_safe
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A customer: its fields, its contacts (with forms to add, edit and deactivate them), the
    incidents it was affected by and the notices sent to it (newest 50 of each; restricted
    incidents only for their members, ``incidents.selectors``). 404 without ``view_customer``."""
    customer = _customer_for(request, pk)
    user = request.user
    affected = list(
        visible_related(user, AffectedCustomer.objects.filter(customer=customer))
        .select_related("incident")
        .only(
            "id",
            "added_at",
            "records_affected",
            "incident__id",
            "incident__reference",
            "incident__title",
            "incident__state",
            "incident__declared_at",
        )
        .order_by("-added_at", "-id")[:CUSTOMER_HISTORY_SIZE]
    )
    deliveries = list(
        visible_related(user, Delivery.objects.filter(customer=customer), "notice__incident")
        .select_related("notice", "notice__incident")
        .only(
            "id",
            "address",
            "language",
            "status",
            "sent_at",
            "created_at",
            "subject",
            "notice__number",
            "notice__kind",
            "notice__incident__id",
            "notice__incident__reference",
        )
        .order_by("-created_at", "-id")[:CUSTOMER_HISTORY_SIZE]
    )
    context = {
        "customer": customer,
        "contacts": list(customer.contacts.order_by("-is_active", "name", "id")),
        "affected": affected,
        "deliveries": deliveries,
        "can_change": user.has_perm("incidents.change_customer"),
        "can_add_contact": user.has_perm("incidents.add_contact"),
        "can_change_contact": user.has_perm("incidents.change_contact"),
        "contact_form": ContactForm(prefix="contact") if user.has_perm("incidents.add_contact") else None,
    }
    return render(request, "dashboard/customer_detail.html", context)


@login_required
def contact_new(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a contact to customer ``pk`` (``services.contact_create``, audited on the customer's chain);
    needs ``incidents.add_contact``. A duplicate email at this customer: 400 naming it."""
    customer = _customer_for(request, pk)
    _require(request, "incidents.add_contact", "Your role may not add contacts.")
    form = ContactForm(request.POST or None, prefix="contact", instance=Contact(customer=customer))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        contact = _save_with_form(
            form,
            lambda: services.contact_create(
                customer=customer,
                actor=request.user,
                name=data["name"],
                email=data["email"],
                language=data["language"],
                role=data["role"],
                is_active=data["is_active"],
            ),
        )
        if contact is not None:
            messages.success(request, f"{contact.name} added to {customer.name}.")
            return redirect("dashboard:customer_detail", pk=pk)
    status = 400 if form.errors else 200
    context = {"form": form, "customer": customer}
    return render(request, "dashboard/contact_form.html", context, status=status)


def _contact_for(request: HttpRequest, pk: int, contact_pk: int) -> tuple[Customer, Contact]:
    customer = _customer_for(request, pk)
    if not request.user.has_perm("incidents.view_contact"):
        raise Http404("No such contact.")
    return customer, get_object_or_404(Contact, pk=contact_pk, customer=customer)


@login_required
def contact_edit(request: HttpRequest, pk: int, contact_pk: int) -> HttpResponse:
    """Change a contact (``services.contact_update``, audited on the customer's chain); needs
    ``incidents.change_contact``."""
    customer, contact = _contact_for(request, pk, contact_pk)
    _require(request, "incidents.change_contact", "Your role may view this contact but not change it.")
    form = ContactForm(request.POST or None, prefix="contact", instance=contact)
    if request.method == "POST" and form.is_valid():
        saved = _save_with_form(
            form,
            lambda: services.contact_update(
                contact=contact,
                actor=request.user,
                changes={
                    name: form.cleaned_data[name]
                    for name in form.changed_data
                    if name in services.CONTACT_FIELDS
                },
            ),
        )
        if saved is not None:
            messages.success(request, f"Saved (changed: {', '.join(form.changed_data) or 'nothing'}).")
            return redirect("dashboard:customer_detail", pk=pk)
    status = 400 if form.errors else 200
    return render(
        request,
        "dashboard/contact_form.html",
        {"form": form, "customer": customer, "contact": Contact.objects.get(pk=contact_pk)},
        status=status,
    )


@login_required
@require_POST
def contact_deactivate(request: HttpRequest, pk: int, contact_pk: int) -> HttpResponse:
    """Deactivate a contact: it stays on record (past deliveries name it) and gets no further
    notice. Needs ``incidents.change_contact``. Already inactive: nothing changes."""
    customer, contact = _contact_for(request, pk, contact_pk)
    _require(request, "incidents.change_contact", "Your role may not change contacts.")
    if contact.is_active:
        services.contact_update(contact=contact, actor=request.user, changes={"is_active": False})
        messages.success(request, f"{contact.name} is deactivated and gets no further notice.")
    else:
        messages.info(request, f"{contact.name} was already inactive.")
    return redirect("dashboard:customer_detail", pk=customer.pk)


#: The largest CSV the import page accepts (the command has no limit).
IMPORT_MAX_BYTES = 5 * 1024 * 1024


@login_required
def customer_import(request: HttpRequest) -> HttpResponse:
    """Import customers and contacts from a CSV file with ``import_customers``'s validation and
    upsert: all or nothing; the problems are listed by row number (400). Needs
    ``incidents.add_customer``, ``change_customer``, ``add_contact`` and ``change_contact``."""
    for permission in ("add_customer", "change_customer", "add_contact", "change_contact"):
        _require(request, f"incidents.{permission}", "Your role may not import customers.")
    form = CustomerImportForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        problems, summary = _import(form.cleaned_data["file"])
        if not problems:
            messages.success(request, f"Imported. {summary}")
            return redirect("dashboard:customer_list")
    status = 400 if (form.errors or problems) else 200
    if problems:
        messages.error(request, f"Nothing was imported: {len(problems)} problem(s) found.")
    context = {"form": form, "problems": problems, "columns": COLUMNS}
    return render(request, "dashboard/customer_import.html", context, status=status)


def _import(upload: Any) -> tuple[list[str], str]:
    """Validate and store an uploaded CSV: ``(problems, summary)``; stored only when there are
    no problems."""
    if upload.size > IMPORT_MAX_BYTES:
        return [f"the file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MiB"], ""
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return ["the file is not UTF-8 text"], ""
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames
        if not header:
            return ["the file is empty; expected a header row"], ""
        missing = [name for name in COLUMNS if name not in [h.strip() for h in header]]
        if missing:
            return [f"missing columns: {', '.join(missing)}"], ""
        reader.fieldnames = [name.strip() for name in header]
        rows, problems = validate_customer_rows((number, row) for number, row in enumerate(reader, start=2))
    except csv.Error as error:
        return [f"not a readable CSV file ({error})"], ""
    if problems:
        return problems, ""
    if not rows.contacts:
        return ["no rows to import"], ""
    try:
        report = upsert_customer_rows(rows, source=f"the import page ({getattr(upload, 'name', 'upload')})")
    except ValidationError as error:
        return [f"refused: {' '.join(error.messages)}"], ""
    return [], f"Customers: {report.customers}. Contacts: {report.contacts}."
