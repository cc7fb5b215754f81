#!/usr/bin/env python
"""API load benchmark: open-loop creates through gunicorn on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/breachdesk .venv/bin/python bench/api_load.py

In one run, against one gunicorn (``--workers`` sync workers; default 2 x cores + 1, gunicorn's
guidance and docker-compose.yml's) on a throwaway
database (``bench_breachdesk_api`` next to the one ``DATABASE_URL`` names, dropped afterwards):

1. ``profile``: 200 requests of each kind in-process (Django's test client): queries and CPU
   milliseconds per ``POST /api/incidents/``, per raw insert and per signed alert.
2. ``incidents``: ``POST /api/incidents/`` at ``--incident-rate`` requests per second (100) for
   ``--seconds`` (180), each with its own ``Idempotency-Key`` and a token.
3. ``alerts``: ``POST /api/intake/alerts/`` at ``--alert-rate`` (200) for ``--seconds``, 20% of
   them repeating an earlier alert's dedupe key (they attach instead of creating).
4. ``saturation``: closed loop with ``--clients`` (12) concurrent clients for ``--saturate-seconds``
   (20) against ``POST /api/incidents/`` and against a minimal view that inserts the same row
   through ``connection.cursor()`` (``bench/api_load_wsgi.py``, served by the same gunicorn);
   the ratio of their throughputs (target at least 0.4).

Open loop: requests leave on a fixed schedule whatever the answers, each on its own connection
(sync workers close after each answer), so a slow server builds a queue instead of slowing the
load. Each request times out after ``--timeout`` (10 s). Printed per phase: sent, answered by
status, errors, p50/p90/p99/max latency; then the database check: incidents and alerts stored
against the successful answers (targets: p99 <= 300 ms, no errors, rows == answers).
Small quick check: ``--seconds 10 --saturate-seconds 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _throwaway import throwaway_database  # noqa: E402

HOST = "127.0.0.1"


# A minimal HTTP/1.1 client: one connection per request (gunicorn's sync workers close anyway).


async def http_post(
    port: int, path: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    """POST ``body``; return (status, response body). Raises on timeout or connection errors."""

    async def exchange() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            lines = [
                f"POST {path} HTTP/1.1",
                f"Host: {HOST}:{port}",
                "Connection: close",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
            ]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head else 0
        return status, payload

    return await asyncio.wait_for(exchange(), timeout)


class Phase:
    """Latencies and outcomes of one phase."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.answers: list[dict] = []
        self.sent = 0
        self.retried = 0
        self.elapsed = 0.0

    def record(self, status: int, payload: bytes, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(seconds)
        if 200 <= status < 300:
            try:
                self.answers.append(json.loads(payload))
            except ValueError:
                self.errors["unparsable 2xx"] = self.errors.get("unparsable 2xx", 0) + 1

    def fail(self, error: BaseException) -> None:
        name = type(error).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    def report(self) -> dict:
        latencies = sorted(self.latencies)

        def pct(p: float) -> float:
            return (
                latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
                if latencies
                else float("nan")
            )

        figures = {
            "sent": self.sent,
            "retried": self.retried,
            "ok": self.ok(),
            "statuses": dict(sorted(self.statuses.items())),
            "errors": self.errors,
            "p50_ms": round(pct(0.50), 1),
            "p90_ms": round(pct(0.90), 1),
            "p99_ms": round(pct(0.99), 1),
            "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
            "throughput_per_s": round(self.ok() / self.elapsed, 1) if self.elapsed else None,
        }
        print(f"{self.name}: {json.dumps(figures)}", flush=True)
        return figures


async def open_loop(
    phase: Phase,
    rate: float,
    seconds: float,
    make_request: Any,
    port: int,
    timeout: float,
    retries: int = 0,
) -> None:
    """Send ``rate`` requests a second for ``seconds`` on a fixed schedule, whatever the answers.
    With ``retries``, a request that timed out or failed to connect is sent again, unchanged
    (same Idempotency-Key), after a second, up to that many times: as a careful client would."""
    interval = 1.0 / rate
    tasks = []
    started = time.monotonic()

    async def one(index: int) -> None:
        path, body, headers = make_request(index)
        sent_at = time.monotonic()
        for attempt in range(retries + 1):
            try:
                status, payload = await http_post(port, path, body, headers, timeout)
            except Exception as error:  # noqa: BLE001 - every failure is counted
                phase.fail(error)
                if attempt < retries:
                    phase.retried += 1
                    await asyncio.sleep(1)
                    continue
                return
            phase.record(status, payload, time.monotonic() - sent_at)
            return

    total = int(rate * seconds)
    for index in range(total):
        delay = started + index * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
        phase.sent += 1
    await asyncio.gather(*tasks)
    phase.elapsed = time.monotonic() - started


async def closed_loop(
    phase: Phase, clients: int, seconds: float, make_request: Any, port: int, timeout: float
) -> None:
    """``clients`` concurrent clients, each sending its next request when the last is answered."""
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def client() -> None:
        while time.monotonic() < deadline:
            path, body, headers = make_request(next(counter))
            sent_at = time.monotonic()
            phase.sent += 1
            try:
                status, payload = await http_post(port, path, body, headers, timeout)
            except Exception as error:  # noqa: BLE001
                phase.fail(error)
                continue
            phase.record(status, payload, time.monotonic() - sent_at)

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    phase.elapsed = time.monotonic() - started


def incident_body(index: int, *, title: str = "Misdirected email") -> bytes:
    return json.dumps(
        {
            "title": f"{title} {index}",
            "detection_source": "staff_escalation",
            "summary": "A payroll file went to the wrong recipient.",
            "detected_at": "2026-05-01T09:30:00Z",
        }
    ).encode()


def alert_requests(secret: str, duplicates: float, seed: int = 7) -> Any:
    """A function of the request's index giving a signed ``POST /api/intake/alerts/`` (path,
    body, headers); a ``duplicates`` share of them repeat an earlier alert's dedupe key."""
    rng = random.Random(seed)
    sent_keys: list[str] = []

    def alert_request(index: int) -> tuple[str, bytes, dict[str, str]]:
        if sent_keys and rng.random() < duplicates:
            dedupe_key = rng.choice(sent_keys)
        else:
            dedupe_key = f"host-{index}-beacon"
            sent_keys.append(dedupe_key)
        body = json.dumps(
            {
                "dedupe_key": dedupe_key,
                "title": f"Beacon {index}",
                "detected_at": "2026-05-01T09:30:00Z",
                "details": {"n": index},
            }
        ).encode()
        stamp = str(int(time.time()))
        digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return (
            "/api/intake/alerts/",
            body,
            {"X-Breachdesk-Timestamp": stamp, "X-Breachdesk-Signature": f"sha256={digest}"},
        )

    return alert_request


def profile_in_process(token_key: str, secret: str, count: int) -> dict:
    """Queries and CPU per request, in-process (no HTTP): the product's create, the raw view's
    insert, and the product's signed alert (20% duplicates, as in the load). Returns, per kind,
    ``{"queries": n, "cpu_ms": ms, "statements": [the SQL of one request]}``."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    token = {"Authorization": f"Token {token_key}"}

    def measure(make_request: Any) -> dict:
        def post(index: int) -> Any:
            path, body, headers = make_request(index)
            return client.post(path, body, content_type="application/json", headers=headers)

        post(10**6)  # warm up
        statements: list[str] = []

        def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            statements.append(sql)
            return execute(sql, params, many, context)

        # An execute wrapper, not the debug cursor: it survives the request's connection
        # handling (the debug log is emptied when a connection opens).
        with connection.execute_wrapper(record):
            post(10**6 + 1)
        started = time.process_time()
        for index in range(count):
            response = post(index)
            assert response.status_code in (200, 201), response.content[:300]
        cpu_ms = (time.process_time() - started) * 1000 / count
        return {"queries": len(statements), "cpu_ms": round(cpu_ms, 2), "statements": statements}

    results = {
        "create": measure(lambda index: ("/api/incidents/", incident_body(index), token)),
        "raw": measure(lambda index: ("/bench/raw-insert/", incident_body(index), token)),
        "alert": measure(alert_requests(secret, 0.2, seed=11)),
    }
    figures = {name: {"queries": r["queries"], "cpu_ms": r["cpu_ms"]} for name, r in results.items()}
    print(f"profile (in-process, {count} each): {json.dumps(figures)}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="bench_breachdesk_api")
    parser.add_argument("--port", type=int, default=8304)
    parser.add_argument(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1) + 1,
        help="gunicorn sync workers (default: gunicorn's guidance, 2 x cores + 1, as docker-compose.yml)",
    )
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--incident-rate", type=float, default=100)
    parser.add_argument("--alert-rate", type=float, default=200)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--saturate-seconds", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--retries", type=int, default=3, help="resends of a timed-out create (same key)")
    parser.add_argument("--profile-count", type=int, default=200)
    parser.add_argument(
        "--show-queries", action="store_true", help="print the SQL of one create and one alert"
    )
    parser.add_argument("--profile-only", action="store_true", help="stop after the in-process profile")
    parser.add_argument("--cprofile", help="write a cProfile of the in-process creates to this file")
    options = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        print("Set DATABASE_URL=postgres://... (the benchmark measures PostgreSQL).", file=sys.stderr)
        return 2

    # One SECRET_KEY for this process and the server: the alert source's secret is encrypted
    # with a key derived from it.
    os.environ.setdefault("SECRET_KEY", "bench-only-" + uuid.uuid4().hex)
    # Throttles on, far above the offered load (their cost is part of the measurement).
    rates = {
        "API_THROTTLE_USER": "1000000/minute",
        "API_THROTTLE_TOKEN": "1000000/minute",
        "API_THROTTLE_ALERT_SOURCE": "1000000/minute",
    }
    os.environ.update(rates)
    # As the server runs (and bench/fanout.py, bench/board.py): DEBUG on would log every
    # statement of the in-process profile with its values interpolated.
    os.environ["DEBUG"] = "false"
    with throwaway_database(options.database):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db import connection

        from incidents.api.authentication import api_token_create
        from incidents.intake import alert_source_create
        from incidents.models import Alert, IdempotencyRecord, Incident

        user = get_user_model().objects.create_user(username="bench.responder", password="x")  # noqa: S106
        user.groups.add(Group.objects.get(name="responder"))
        _token, key = api_token_create(
            user=user, name="bench", lifetime=__import__("datetime").timedelta(days=1)
        )
        _source, secret = alert_source_create(name="bench SIEM")
        os.environ["BENCH_RAW_INSERT"] = "1"
        from api_load_wsgi import install_raw_view

        install_raw_view()
        if options.cprofile:
            import cProfile

            cProfile.runctx(
                "profile_in_process(key, secret, options.profile_count)",
                globals(),
                locals(),
                options.cprofile,
            )
        profile = profile_in_process(key, secret, options.profile_count)
        if options.show_queries:
            for name in ("create", "alert"):
                print(f"the statements of one {name}:")
                for sql in profile[name]["statements"]:
                    print("  ", sql[:200])
        if options.profile_only:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE incidents_incident, incidents_auditevent, incidents_idempotencyrecord CASCADE"
            )
        connection.close()

        env = {
            **os.environ,
            "DEBUG": "false",
            "SECRET_KEY": os.environ["SECRET_KEY"],
            "ALLOWED_HOSTS": HOST,
            "LOG_LEVEL": "WARNING",
            **rates,
            "PYTHONPATH": f"{REPO}:{REPO / 'bench'}",
        }
        server = subprocess.Popen(
            [
                str(REPO / ".venv/bin/gunicorn"),
                "api_load_wsgi:application",
                "-b",
                f"{HOST}:{options.port}",
                "-w",
                str(options.workers),
                "--timeout",
                "30",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=env,
        )
        try:
            for _ in range(100):
                try:
                    asyncio.run(http_post(options.port, "/bench/raw-insert/", b"{}", {}, 1))
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.2)
            figures = asyncio.run(run_load(options, key, secret))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)

        incident_ok = figures["incidents"]["answers"]
        alert_answers = figures["alerts"]["answers"]
        created_ids = {answer["id"] for answer in incident_ok}
        alert_incidents = {answer["incident"] for answer in alert_answers}
        opened = sum(1 for answer in alert_answers if not answer["deduplicated"])
        product_rows = Incident.objects.filter(
            detection_source="staff_escalation", title__startswith="Misdirected email"
        ).count()
        raw_rows = figures["saturation"]["raw_rows"]
        check = {
            "incident_answers_2xx": len(incident_ok),
            "incident_distinct_ids": len(created_ids),
            "incident_rows": Incident.objects.filter(pk__in=created_ids).count(),
            "incident_rows_from_the_open_loop": product_rows - figures["saturation"]["create_ok"],
            "alert_answers_2xx": len(alert_answers),
            "alert_rows": Alert.objects.count(),
            "alert_incidents_opened_answers": opened,
            "alert_incident_rows": Incident.objects.filter(detection_source="automated_alert").count(),
            "alert_incidents_named": len(alert_incidents),
            "raw_rows": raw_rows,
            "idempotency_records": IdempotencyRecord.objects.count(),
        }
        print(f"database check: {json.dumps(check)}", flush=True)
        ratio = figures["saturation"]["create_per_s"] / (figures["saturation"]["raw_per_s"] or float("nan"))
        print(
            json.dumps(
                {
                    "profile": {
                        name: {"queries": kind["queries"], "cpu_ms": kind["cpu_ms"]}
                        for name, kind in profile.items()
                    },
                    "incidents_p99_ms": figures["incidents"]["report"]["p99_ms"],
                    "alerts_p99_ms": figures["alerts"]["report"]["p99_ms"],
                    "saturation_create_per_s": figures["saturation"]["create_per_s"],
                    "saturation_raw_per_s": figures["saturation"]["raw_per_s"],
                    "ratio_create_to_raw": round(ratio, 2),
                }
            ),
            flush=True,
        )
    return 0


async def drained(port: int) -> None:
    """Wait until the server has worked off any queue a phase left (a raw request answers
    within half a second), so one phase's backlog is not measured in the next."""
    for _ in range(600):
        started = time.monotonic()
        try:
            await http_post(port, "/bench/raw-insert/", b'{"title": "probe"}', {}, 5)
        except Exception:  # noqa: BLE001, S112 - still busy: try again
            continue
        if time.monotonic() - started < 0.5:
            return
        await asyncio.sleep(0.5)


async def run_load(options: Any, key: str, secret: str) -> dict:
    port, timeout = options.port, options.timeout
    token = {"Authorization": f"Token {key}"}

    def incident_request(index: int) -> tuple[str, bytes, dict[str, str]]:
        return (
            "/api/incidents/",
            incident_body(index),
            {**token, "Idempotency-Key": f"bench-{index}-{uuid.uuid4().hex}"},
        )

    incidents = Phase(f"incidents at {options.incident_rate:g}/s for {options.seconds:g} s")
    await open_loop(
        incidents, options.incident_rate, options.seconds, incident_request, port, timeout, options.retries
    )
    incident_report = incidents.report()
    await drained(port)

    alert_request = alert_requests(secret, options.duplicates)

    alerts = Phase(
        f"alerts at {options.alert_rate:g}/s for {options.seconds:g} s, {options.duplicates:.0%} duplicates"
    )
    await open_loop(alerts, options.alert_rate, options.seconds, alert_request, port, timeout)
    alert_report = alerts.report()
    await drained(port)

    create = Phase(f"saturation: POST /api/incidents/, {options.clients} clients")
    await closed_loop(
        create,
        options.clients,
        options.saturate_seconds,
        lambda index: ("/api/incidents/", incident_body(index), token),
        port,
        timeout,
    )
    create_report = create.report()
    await drained(port)
    raw = Phase(f"saturation: raw INSERT view, {options.clients} clients")
    await closed_loop(
        raw,
        options.clients,
        options.saturate_seconds,
        lambda index: ("/bench/raw-insert/", incident_body(index, title="Raw insert"), {}),
        port,
        timeout,
    )
    raw_report = raw.report()
    return {
        "incidents": {"report": incident_report, "answers": incidents.answers},
        "alerts": {"report": alert_report, "answers": alerts.answers},
        "saturation": {
            "create_per_s": create_report["throughput_per_s"],
            "raw_per_s": raw_report["throughput_per_s"],
            "create_ok": create.ok(),
            "raw_rows": raw.ok(),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
