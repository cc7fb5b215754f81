#!/usr/bin/env python
"""Fan-out benchmark: one incident affecting 4,000 customers with 10,000 administrative
contacts in five languages, approved through the web server and sent through the outbox to a
local SMTP relay.

Run from the repository root (PostgreSQL is the production case; without DATABASE_URL it uses
a temporary SQLite file):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/breachdesk .venv/bin/python bench/fanout.py

It creates and drops its own database (``bench_breachdesk``), starts the relay in a separate
process for each phase (``--relay``, below), and reports:

- web approval: the manager logs in to gunicorn (one sync worker, 30 s timeout) and posts the
  approval form; the time to its answer and the worker's memory (VmRSS, VmHWM) before and
  after (target under 2 s at 10,000 contacts); ``--no-web`` approves through the service;
- delivery creation: ``notice_deliveries_create``, what the worker does after the approval
  (render and build once per customer and language, delivery rows);
- send, one process: ``deliveries_send_due`` in this process (claim, SMTP, record, clocks);
- the 10,000-notice time, sequential: approval + creation + one-process send (target under 40 s);
- baseline: a plain ``smtplib`` loop sending the same messages (built before its clock
  starts) over one connection to the same relay; the ratio is baseline time / outbox send time
  (1.0: as fast as the plain loop; targets at least 0.6 in one process, 0.8 with two);
- send, N worker processes (PostgreSQL only; ``--workers 0`` skips): the same deliveries
  reset to pending and sent by N processes running ``deliveries_send_due`` at once;
- the 10,000-notice time, overlapped (PostgreSQL only; ``--no-overlap`` skips), as production
  runs it: a second incident affecting the same customers is declared through the services,
  its initial notice approved through ``notice_approve``, and this process creates the
  deliveries while another process runs ``deliveries_send_due`` again and again (polling every
  20 ms; in production the creating worker wakes the sender after each committed chunk); the
  figure is the approval's start to the last acceptance by the relay.

The relay (``--relay``): ``lean`` (the default) is ``notifications.lean_relay``, an asyncio
SMTP receiver that answers as a relay does and only counts messages, distinct recipients and
distinct Message-IDs; ``parsing`` is ``notifications.mail_sink`` (aiosmtpd, parsing and
keeping every message, about 4 ms of CPU a message on the 2-core benchmark machine). Lean is
the default because the benchmark measures the sender: in production the relay is an MTA on
another host, whose per-message work does not share the sender's cores, while on a 2-core
machine the parsing sink takes a core's worth of CPU from the sender and the database for the
whole run. Every phase of one run, the plain loop included, sends to the same kind of relay,
so the ratios stay like for like; ``parsing`` reproduces the earlier runs' figures. Either
relay's counts must show every message received, each to its own recipient with its own
Message-ID, or the run exits 1.

``--database NAME`` names the throwaway database (default ``bench_breachdesk``);
``--smtp-port`` and ``--web-port`` fix the relay's and gunicorn's ports (default: free ones);
``--profile FILE`` and ``--profile-create FILE`` cProfile the one-process send and the
delivery creation. The creation, send and baseline lines also give this process's CPU time
(``time.process_time``), steadier than wall time on a shared machine.

Figures only: nothing here asserts a timing. Exit status 1 if a delivery was lost.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Django is set up only once the benchmark's database exists
    from django.contrib.auth.models import User

    from incidents.models import Customer, Incident

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LANGUAGES = ("en", "de", "fr", "es", "ja")


# The parsing sink, run as its own process (``--sink PORT``) so that parsing the messages does not
# compete with the sender for this process's interpreter lock.
def run_sink(port: int) -> None:
    from notifications.mail_sink import MailSink, start_mail_sink

    sink = MailSink()
    controller = start_mail_sink(sink, port=port)
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    print("ready", flush=True)
    ready_cpu = time.process_time()
    while not stopped:
        time.sleep(0.05)
    controller.stop()
    recipients = [address for message in sink.received for address in message.recipients]
    print(
        json.dumps(
            {
                "received": len(sink.received),
                "recipients": len(set(recipients)),
                "message_ids": len({message.message_id for message in sink.received}),
                "cpu": time.process_time() - ready_cpu,
            }
        ),
        flush=True,
    )


class Sink:
    """The relay subprocess: ``start()``, then ``stop()`` returns what it received
    (``received``, distinct ``recipients`` and ``message_ids``). ``kind``: ``lean``
    (``notifications.lean_relay``, counts only) or ``parsing`` (``notifications.mail_sink``,
    aiosmtpd, parses and keeps every message)."""

    def __init__(self, port: int, kind: str = "lean"):
        self.port = port
        self.kind = kind
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Sink:
        command = (
            [sys.executable, "-m", "notifications.lean_relay", "--port", str(self.port)]
            if self.kind == "lean"
            else [sys.executable, __file__, "--sink", str(self.port)]
        )
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None  # stdout=PIPE
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"The SMTP sink did not start: {line!r}")
        return self

    def stop(self) -> dict[str, Any]:
        assert self.process is not None, "stop() without start()"
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        self.process = None
        return json.loads(output.strip().splitlines()[-1])

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:  # an error on the way: do not leave the sink running
            self.process.kill()
            self.process.wait()


# A send worker (``--send-worker``): Django on the benchmark's database (from the environment the
# parent set), waits for "go" on stdin, sends everything due and prints its report.
def run_send_worker() -> None:
    import django

    django.setup()
    from notifications.sender import deliveries_send_due

    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    report = deliveries_send_due()
    print(
        json.dumps(
            {
                "sent": report.sent,
                "retried": report.retried,
                "failed": report.failed,
                "seconds": time.perf_counter() - started,
            }
        ),
        flush=True,
    )


# An overlapped sender (``--send-loop NOTICE_ID``): like production's sender woken after each
# created chunk, it runs ``deliveries_send_due`` again and again (polling every 20 ms when nothing
# is due) until the notice's deliveries are all created and none is left to send; prints the
# CLOCK_MONOTONIC instant of its last acceptance, which the parent compares with its own clock.
def run_send_loop(notice_id: int) -> None:
    import django

    django.setup()
    from notifications.models import Delivery, DeliveryCreation, Notice
    from notifications.sender import deliveries_send_due

    print("ready", flush=True)
    sys.stdin.readline()
    sent = retried = failed = rounds = 0
    last_acceptance = time.monotonic()
    started_cpu = time.process_time()
    while True:
        report = deliveries_send_due()
        rounds += 1
        if report.sent:
            sent += report.sent
            last_acceptance = time.monotonic()
        retried += report.retried
        failed += report.failed
        if report.sent or report.retried or report.failed:
            continue
        created = Notice.objects.filter(pk=notice_id, delivery_creation=DeliveryCreation.DONE).exists()
        unsent = Delivery.objects.filter(notice_id=notice_id).exclude(status__in=("sent", "failed"))
        if created and not unsent.exists():
            break
        time.sleep(0.02)
    print(
        json.dumps(
            {
                "sent": sent,
                "retried": retried,
                "failed": failed,
                "rounds": rounds,
                "last_acceptance": last_acceptance,
                "cpu": time.process_time() - started_cpu,
            }
        ),
        flush=True,
    )


def build_incident(customers: int, contacts: int, language_mix: str) -> tuple[Incident, User]:
    """Customers and contacts in bulk (register entries), then the incident through the real
    services: create, triage, affected customers, declare. Returns (incident, manager)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from incidents.models import Contact, Customer

    users = get_user_model()
    manager = users.objects.create_user(username="bench.manager", email="manager@bench.example")
    manager.groups.add(Group.objects.get(name="incident_manager"))
    responder = users.objects.create_user(username="bench.responder", email="responder@bench.example")
    responder.groups.add(Group.objects.get(name="responder"))
    manager, responder = users.objects.get(pk=manager.pk), users.objects.get(pk=responder.pk)

    rows = Customer.objects.bulk_create(
        (
            Customer(
                name=f"Bench Customer {n:05d} GmbH",
                account_reference=f"BENCH-{n:05d}",
                preferred_language=LANGUAGES[n % len(LANGUAGES)],
            )
            for n in range(customers)
        ),
        batch_size=1000,
    )
    base, extra = divmod(contacts, customers)
    contact_rows = []
    for n, customer in enumerate(rows):
        for c in range(base + (1 if n < extra else 0)):
            if language_mix == "spread":  # every contact of a customer in another language
                language = LANGUAGES[(n + c) % len(LANGUAGES)]
            else:  # most write the customer's language; every third contact reads English
                language = "en" if c == 2 else ""
            contact_rows.append(
                Contact(
                    customer=customer,
                    name=f"Admin {c}",
                    email=f"admin{c}@bench-{n:05d}.example",
                    language=language,
                )
            )
    Contact.objects.bulk_create(contact_rows, batch_size=2000)

    return declare_incident(rows, responder, manager, "Support ticket export exposed"), manager


def declare_incident(customers: list[Customer], responder: User, manager: User, title: str) -> Incident:
    """An incident affecting ``customers``, through the real services: create, triage, affected
    customers (in bulk), declare."""
    from incidents import services
    from incidents.models import AffectedCustomer

    incident = services.incident_create(
        actor=responder, fields={"title": title, "detection_source": "staff_escalation"}
    )
    incident = services.incident_triage(incident=incident, actor=responder, severity="high", malicious="yes")
    # Bulk, for setup speed: affected_customer_add would also write 4,000 audit events.
    AffectedCustomer.objects.bulk_create(
        (
            AffectedCustomer(
                incident=incident, customer=customer, added_by=responder, records_affected=100 + n
            )
            for n, customer in enumerate(customers)
        ),
        batch_size=1000,
    )
    return services.incident_declare(
        incident=incident,
        actor=manager,
        nature_of_breach="A support ticket export with customer contact data was reachable without login.",
    )


class WebServer:
    """gunicorn with one sync worker (its default 30 s timeout) on the benchmark's database, so
    the approval is measured through a real web server; ``worker_memory()`` reads the worker's
    resident and peak memory from /proc."""

    def __init__(self, port: int):
        self.port = port
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> WebServer:
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--timeout",
                "30",
            ],
            cwd=REPO,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=5).read()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def worker_memory(self) -> dict[str, float]:
        """The worker's ``VmRSS`` and ``VmHWM`` (peak) in MiB."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        status = Path(f"/proc/{children[0]}/status").read_text()
        values = {}
        for line in status.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values


class Browser:
    """A logged-in session over plain HTTP (cookies and the CSRF token, as a browser sends them)."""

    def __init__(self, base: str):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=120) as response:
            return response.read().decode()

    def post(self, path: str, data: dict[str, str]) -> int:
        token = next(cookie.value for cookie in self.cookies if cookie.name == "csrftoken")
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(
            self.base + path, data=body, headers={"Referer": self.base + path}, method="POST"
        )
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status
        except urllib.error.HTTPError as answer:
            return answer.code

    def login(self, username: str, password: str) -> None:
        self.get("/accounts/login/")
        status = self.post("/accounts/login/", {"username": username, "password": password})
        if status != 302:
            raise RuntimeError(f"Login failed ({status})")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # a 302 is the answer we time
        return None


#: What each ``--relay`` is, for the report.
RELAYS = {
    "lean": "notifications.lean_relay: SMTP, counts recipients and Message-IDs, no parsing",
    "parsing": "notifications.mail_sink: aiosmtpd, parses and keeps every message",
}


def proves_all(received: dict[str, Any], expected: int) -> bool:
    """Whether the relay's counts prove ``expected`` messages delivered: as many received,
    each to its own recipient with its own Message-ID."""
    return received["received"] == received["recipients"] == received["message_ids"] == expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--contacts", type=int, default=10000)
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes for the second send (0: skip)"
    )
    parser.add_argument(
        "--languages",
        choices=("spread", "mostly-customer"),
        default="spread",
        help="spread: a customer's contacts each read another language (the most rendering)",
    )
    parser.add_argument("--database", default="bench_breachdesk", help="name of the throwaway database")
    parser.add_argument("--no-web", action="store_true", help="approve through the service, not gunicorn")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the one-process send into FILE")
    parser.add_argument(
        "--profile-create", metavar="FILE", help="cProfile the delivery creation by the worker into FILE"
    )
    parser.add_argument(
        "--relay",
        choices=("lean", "parsing"),
        default="lean",
        help="lean: a counting SMTP relay (notifications.lean_relay); parsing: the aiosmtpd mail sink",
    )
    parser.add_argument(
        "--no-overlap", action="store_true", help="skip the overlapped creation and send (second incident)"
    )
    parser.add_argument("--smtp-port", type=int, default=0, help="the SMTP sink's port (default: a free one)")
    parser.add_argument("--web-port", type=int, default=0, help="gunicorn's port (default: a free one)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import _throwaway  # noqa: F401 - plain HTTP and no second factor for the benchmark's server

    from notifications.mail_sink import free_port

    port = args.smtp_port or free_port()
    os.environ["EMAIL_URL"] = f"smtp://127.0.0.1:{port}"
    # As in production (and bench/board.py): DEBUG on would log every query with its values
    # interpolated (psycopg's mogrify), a tenth of the send's CPU that production never spends.
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-secret-" + "x" * 40)
    sys.path.insert(0, str(REPO / "bench"))
    from _throwaway import throwaway_database

    lost = False
    load_before = os.getloadavg()
    with throwaway_database(args.database) as vendor:
        from django.conf import settings
        from django.db.models import Count
        from django.utils import timezone

        from incidents.models import Customer
        from notifications.messages import address_header, delivery_bytes
        from notifications.models import Clock, Delivery, Notice
        from notifications.sender import deliveries_send_due
        from notifications.services import notice_approve, notice_deliveries_create, notice_draft

        print(
            f"Database: {vendor}; {os.cpu_count()} CPUs, load average {load_before[0]:.1f}; "
            f"{args.customers:,} customers, {args.contacts:,} contacts, languages: {args.languages}"
        )
        started = time.perf_counter()
        incident, manager = build_incident(args.customers, args.contacts, args.languages)
        manager.set_password("bench-password")
        manager.save(update_fields=["password"])
        draft = notice_draft(incident=incident, actor=manager, kind="initial")
        setup_seconds = time.perf_counter() - started

        web = None
        if args.no_web:
            started = time.perf_counter()
            notice_approve(notice=draft, actor=manager)
            approve_seconds = time.perf_counter() - started
        else:
            from django.db import connections

            connections.close_all()  # gunicorn's worker opens its own
            with WebServer(args.web_port or free_port()) as server:
                browser = Browser(f"http://127.0.0.1:{server.port}")
                browser.login("bench.manager", "bench-password")
                page_path = f"/incidents/{incident.pk}/notices/{draft.number}/"
                started = time.perf_counter()
                page = browser.get(page_path)
                draft_page_seconds = time.perf_counter() - started
                found = {
                    name: re.search(rf'name="approve-{name}" value="(\d+)"', page)
                    for name in ("customers", "contacts")
                }
                counts = {name: match.group(1) for name, match in found.items() if match is not None}
                if len(counts) != 2:
                    raise RuntimeError("The notice page offers no approval form")
                before = server.worker_memory()
                started = time.perf_counter()
                status = browser.post(
                    f"{page_path}approve/",
                    {
                        "approve-confirm": "on",
                        "approve-customers": counts["customers"],
                        "approve-contacts": counts["contacts"],
                    },
                )
                approve_seconds = time.perf_counter() - started
                after_post = server.worker_memory()
                started = time.perf_counter()
                browser.get(page_path)
                progress_page_seconds = time.perf_counter() - started
                after = server.worker_memory()
                if status != 302:
                    raise RuntimeError(f"The approval answered {status}")
                web = (draft_page_seconds, progress_page_seconds, before, after_post, after, counts)
        notice = Notice.objects.get(pk=draft.pk)

        create_profiler = None
        if args.profile_create:
            import cProfile

            create_profiler = cProfile.Profile()
            create_profiler.enable()
        started, started_cpu = time.perf_counter(), time.process_time()
        created = notice_deliveries_create(notice_id=notice.pk)
        create_seconds = time.perf_counter() - started
        create_cpu = time.process_time() - started_cpu
        if create_profiler is not None:
            create_profiler.disable()
            create_profiler.dump_stats(args.profile_create)
        deliveries = Delivery.objects.filter(notice=notice)
        total = deliveries.count()
        languages = dict(deliveries.values_list("language").annotate(n=Count("id")).order_by("language"))

        with Sink(port, args.relay) as sink:
            profiler = None
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            started, started_cpu = time.perf_counter(), time.process_time()
            report = deliveries_send_due()
            send_seconds = time.perf_counter() - started
            send_cpu = time.process_time() - started_cpu
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            received = sink.stop()
        sent_ok = deliveries.filter(status="sent").count()
        lost |= sent_ok != total or not proves_all(received, total)
        incident.refresh_from_db()

        # The baseline: the same messages, built before its clock starts, sent by a plain loop.
        from_header = address_header("From", settings.DEFAULT_FROM_EMAIL)
        messages = []
        for d in deliveries.select_related("notice_message").order_by("id"):
            shared = d.notice_message
            assert shared is not None
            data = delivery_bytes(
                from_header=from_header,
                to_address=d.address,
                message_id=d.message_id,
                in_reply_to=d.in_reply_to,
                references=d.references.split(),
                language=d.language,
                subject_header=shared.subject_header,
                body=bytes(shared.mime),
                date=timezone.now(),
            )
            messages.append((d.address, data))
        from_address = "breachdesk@localhost"
        with Sink(port, args.relay) as sink:
            started, started_cpu = time.perf_counter(), time.process_time()
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                for address, data in messages:
                    smtp.sendmail(from_address, [address], data)
            baseline_seconds = time.perf_counter() - started
            baseline_cpu = time.process_time() - started_cpu
            baseline_received = sink.stop()
        lost |= not proves_all(baseline_received, len(messages))

        workers_result = None
        if args.workers and vendor == "postgresql":
            deliveries.update(
                status="pending",
                attempts=0,
                sent_at=None,
                claim_token="",
                claimed_until=None,
                next_attempt_at=timezone.now(),
                last_error="",
            )
            Clock.objects.filter(incident=incident).update(met_at=None)
            with Sink(port, args.relay) as sink:
                processes = [
                    subprocess.Popen(
                        [sys.executable, __file__, "--send-worker"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                        env=os.environ.copy(),
                    )
                    for _ in range(args.workers)
                ]
                try:
                    for process in processes:
                        assert process.stdout is not None  # stdout=PIPE
                        if process.stdout.readline().strip() != "ready":
                            raise RuntimeError("A send worker did not start.")
                    started = time.perf_counter()
                    for process in processes:
                        assert process.stdin is not None  # stdin=PIPE
                        process.stdin.write("go\n")
                        process.stdin.flush()
                    reports = [
                        json.loads(process.communicate(timeout=600)[0].strip().splitlines()[-1])
                        for process in processes
                    ]
                    workers_seconds = time.perf_counter() - started
                finally:
                    for process in processes:
                        if process.poll() is None:
                            process.kill()
                            process.wait()
                workers_received = sink.stop()
            workers_sent = deliveries.filter(status="sent").count()
            lost |= workers_sent != total or not proves_all(workers_received, total)
            workers_result = (workers_seconds, reports, workers_received, workers_sent)

        # Overlapped, as in production: a second incident affecting the same customers; its
        # initial notice approved through the service, the deliveries created in this process
        # while another process sends them as they are committed.
        overlap = None
        if not args.no_overlap and vendor == "postgresql":
            from django.contrib.auth import get_user_model

            users = get_user_model()
            second = declare_incident(
                list(Customer.objects.filter(account_reference__startswith="BENCH-").order_by("id")),
                users.objects.get(username="bench.responder"),
                manager,
                "Second ticket export exposed (overlapped phase)",
            )
            second_draft = notice_draft(incident=second, actor=manager, kind="initial")
            with Sink(port, args.relay) as sink:
                sender = subprocess.Popen(
                    [sys.executable, __file__, "--send-loop", str(second_draft.pk)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=os.environ.copy(),
                )
                try:
                    assert sender.stdout is not None and sender.stdin is not None  # PIPE
                    if sender.stdout.readline().strip() != "ready":
                        raise RuntimeError("The overlapped sender did not start.")
                    sender.stdin.write("go\n")  # it polls for due deliveries from now on
                    sender.stdin.flush()
                    started, started_cpu = time.monotonic(), time.process_time()
                    notice_approve(notice=second_draft, actor=manager)
                    approved = time.monotonic()
                    second_created = notice_deliveries_create(notice_id=second_draft.pk)
                    created_at, overlap_create_cpu = time.monotonic(), time.process_time() - started_cpu
                    loop_report = json.loads(sender.communicate(timeout=900)[0].strip().splitlines()[-1])
                finally:
                    if sender.poll() is None:
                        sender.kill()
                        sender.wait()
                overlap_received = sink.stop()
            second_deliveries = Delivery.objects.filter(notice=second_draft)
            overlap_total = second_deliveries.count()
            overlap_sent = second_deliveries.filter(status="sent").count()
            lost |= overlap_total != total or overlap_sent != total or not proves_all(overlap_received, total)
            overlap = {
                "approval": approved - started,
                "created": created_at - started,
                "create_cpu": overlap_create_cpu,
                "total": loop_report["last_acceptance"] - started,
                "report": loop_report,
                "received": overlap_received,
                "sent": overlap_sent,
                "deliveries": second_created.deliveries,
            }

    load_after = os.getloadavg()
    print(f"Relay: {args.relay} ({RELAYS[args.relay]}), its own process, the same for every phase")
    print(f"Setup (bulk customers and contacts, declare through the services): {setup_seconds:.1f} s")
    print(f"Deliveries: {total:,} by language {languages}")
    if web is not None:
        draft_page, progress_page, before, after_post, after, counts = web
        print(
            f"Web approval through gunicorn (1 sync worker, 30 s timeout), POST to its 302: {approve_seconds:.2f} s "
            f"for {counts['customers']} customers, {counts['contacts']} contacts (target < 2 s)"
        )
        print(
            f"  draft page (preview, audience) {draft_page:.2f} s; notice page after approval {progress_page:.2f} s"
        )
        print(
            f"  web worker memory: {before['VmRSS']:.0f} MiB before the approval, {after_post['VmRSS']:.0f} MiB after it, "
            f"{after['VmRSS']:.0f} MiB after the progress page; peak {after['VmHWM']:.0f} MiB"
        )
    else:
        print(f"Approval (service, no web server): {approve_seconds:.2f} s")
    print(
        f"Delivery creation by the worker (render and build {created.messages:,} messages, {created.deliveries:,} "
        f"rows, {created.customers:,} customers): {create_seconds:.2f} s (CPU of this process {create_cpu:.2f} s)"
    )
    print(
        f"Send, one process: {send_seconds:.2f} s (CPU {send_cpu:.2f} s), {report.sent / send_seconds:,.0f} notices/s "
        f"(sent {report.sent:,}, retried {report.retried}, failed {report.failed}; sink received "
        f"{received['received']:,} for {received['recipients']:,} addresses, {received['message_ids']:,} "
        f"Message-IDs; the relay's CPU {received['cpu']:.2f} s); incident now {incident.state}"
    )
    print(
        f"10,000-notice time (approval + creation + one-process send): {approve_seconds + create_seconds + send_seconds:.1f} s "
        f"for {total:,} notices (target < 40 s)"
    )
    print(
        f"Baseline, plain smtplib loop, one connection, the same prebuilt messages: {baseline_seconds:.2f} s "
        f"(CPU {baseline_cpu:.2f} s), "
        f"{len(messages) / baseline_seconds:,.0f} messages/s (sink received "
        f"{baseline_received['received']:,} for {baseline_received['recipients']:,} addresses, "
        f"{baseline_received['message_ids']:,} Message-IDs; the relay's CPU {baseline_received['cpu']:.2f} s)"
    )
    print(f"Ratio baseline / outbox send, one process: {baseline_seconds / send_seconds:.2f} (target >= 0.6)")
    if workers_result is not None:
        seconds, reports, workers_received, workers_sent = workers_result
        print(
            f"Send, {len(reports)} worker processes: {seconds:.2f} s, {workers_sent / seconds:,.0f} notices/s "
            f"(per worker sent {[r['sent'] for r in reports]}; sink received {workers_received['received']:,} "
            f"for {workers_received['recipients']:,} addresses, {workers_received['message_ids']:,} Message-IDs); ratio to baseline {baseline_seconds / seconds:.2f} "
            f"(target >= 0.8)"
        )
    if overlap is not None:
        loop = overlap["report"]
        print(
            f"10,000 notices, overlapped (second incident, same customers; approval through the service, "
            f"creation in this process, a polling deliveries_send_due loop in another): approval to last "
            f"acceptance {overlap['total']:.1f} s for {overlap['sent']:,} notices (target < 40 s); approval "
            f"{overlap['approval']:.2f} s, creation done at {overlap['created']:.1f} s (CPU {overlap['create_cpu']:.2f} s), "
            f"sender CPU {loop['cpu']:.2f} s in {loop['rounds']} rounds (sent {loop['sent']:,}, retried "
            f"{loop['retried']}, failed {loop['failed']}; sink received {overlap['received']['received']:,} for "
            f"{overlap['received']['recipients']:,} addresses, {overlap['received']['message_ids']:,} Message-IDs); "
            f"sequential sum above {approve_seconds + create_seconds + send_seconds:.1f} s"
        )
    print(
        f"Load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f} on {os.cpu_count()} CPUs"
    )
    if lost:
        print("LOST DELIVERIES: not every notice reached the sink.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--sink":
        run_sink(int(sys.argv[2]))
    elif sys.argv[1:] == ["--send-worker"]:
        run_send_worker()
    elif len(sys.argv) == 3 and sys.argv[1] == "--send-loop":
        run_send_loop(int(sys.argv[2]))
    else:
        sys.exit(main())
