"""Helpers for the fault-injection tests: a private redis-server, a real Celery worker in a
subprocess, the test process's Celery app pointed at that Redis, and bounded polling.

Everything here starts processes that the tests must end: each helper's ``stop``/``kill`` is
called in a ``finally`` (the fixtures in ``test_faults.py`` do it), and every wait has a timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notifications.mail_sink import free_port

REPO = Path(__file__).resolve().parents[2]
CELERY = REPO / ".venv" / "bin" / "celery"
if not CELERY.exists():  # a virtualenv elsewhere: the celery next to this interpreter
    CELERY = Path(sys.executable).with_name("celery")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Call ``predicate`` until it returns something truthy and return that; raise
    ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"Gave up after {timeout:.0f} s waiting for {what or predicate}.")
        time.sleep(interval)


def _port_answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class RedisServer:
    """A private ``redis-server`` on 127.0.0.1:``port`` that persists nothing, so a restart
    comes back empty (every queued message is gone)."""

    port: int = field(default_factory=free_port)
    log_file: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start a new server process on ``port``; returns once it answers (at most 10 s)."""
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: _port_answers(self.port), timeout=10, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        """Kill the server process (as a crash would), and wait until the port is closed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        wait_for(lambda: not _port_answers(self.port), timeout=10, what=f"port {self.port} to close")


@dataclass
class CeleryWorker:
    """``celery -A config worker`` in its own process group, logging to ``log_file``.

    ``environment``: the variables the worker gets on top of this process's PATH/HOME.
    """

    environment: dict[str, str]
    log_file: Path
    beat: bool = False
    process: subprocess.Popen | None = None

    def start(self, *, ready_timeout: float = 60) -> CeleryWorker:
        """Start the worker and return once it logs that it is ready (raises ``TimeoutError``,
        with the log's tail, otherwise)."""
        command = [
            str(CELERY),
            "-A",
            "config",
            "worker",
            "-Q",
            "notices,deadlines,default",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "-l",
            "INFO",
            "--hostname",
            f"faults-{os.getpid()}-{free_port()}@%h",
        ]
        if self.beat:
            command += ["--beat", "--schedule", str(self.log_file.with_suffix(".beat-schedule"))]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop/kill
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=self.environment,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(self._ready, timeout=ready_timeout, interval=0.25, what="the Celery worker to be ready")
        except TimeoutError as error:
            self.kill()
            raise TimeoutError(f"{error}\n--- worker log ---\n{self.log_tail()}") from None
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"The Celery worker exited with {self.process.returncode}:\n{self.log_tail()}")
        return b" ready." in self.log_file.read_bytes()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL the whole process group (the main process and its pool children) at once:
        nothing gets to finish, acknowledge or record anything."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None
        self._log_handle.close()

    def stop(self, *, timeout: float = 15) -> None:
        """Ask the worker to stop (SIGTERM to the main process: a warm shutdown that lets the
        running task finish), then SIGKILL the group after ``timeout`` seconds."""
        if self.process is None:
            return
        try:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


def worker_environment(*, broker_url: str, smtp_port: int, var_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment a worker subprocess needs to share this test's world: the test database
    (the one pytest-django created), ``broker_url``, the SMTP sink on ``smtp_port`` and a private
    ``var_dir``. ``overrides`` are further settings read from the environment
    (``NOTICE_CLAIM_SECONDS``, ``NOTICE_SEND_CHUNK_SIZE``, ...)."""
    from django.db import connection

    database = connection.settings_dict
    user = database.get("USER") or "postgres"
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or "5432"
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{user}{password}@{host}:{port}/{database['NAME']}",
        "CELERY_BROKER_URL": broker_url,
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "EMAIL_TIMEOUT": "10",
        "BREACHDESK_VAR_DIR": str(var_dir),
        "LOG_LEVEL": "INFO",
    }
    environment.update(overrides)
    return environment


def _reset_connections(app) -> None:
    """Close and forget every pooled broker connection and producer (kombu keeps them in global
    pools keyed by connection), so the next publish connects to the broker now configured."""
    from kombu import pools

    pools.reset()
    app._pool = None
    try:
        app.__dict__["amqp"]._producer_pool = None
    except KeyError:
        pass


@contextmanager
def app_publishing_to(broker_url: str):
    """Within the block, tasks queued by this process (``config.celery.enqueue``) go to
    ``broker_url`` instead of running eagerly in-process; restores the app afterwards."""
    from config.celery import app

    # Publishing uses broker_write_url; broker_url would lose to a CELERY_BROKER_URL variable. It is
    # set as a key: the attribute is a read-only property that reads the key (celery.app.utils).
    saved = (app.conf.get("broker_write_url"), app.conf.task_always_eager, app.conf.task_eager_propagates)
    _reset_connections(app)
    app.conf["broker_write_url"] = broker_url
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False
    try:
        yield app
    finally:
        _reset_connections(app)
        app.conf["broker_write_url"], app.conf.task_always_eager, app.conf.task_eager_propagates = saved
