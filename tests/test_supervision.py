"""Issue 8: a worker that exits is started again. ``scripts/supervise`` restarts the command it
runs (alone, with a dummy command), and ``scripts/run`` runs its Celery worker (with beat) and
mail sink under it: a worker killed with SIGKILL comes back as a new process.

These start real processes (and, for ``scripts/run``, the whole embedded stack on a SQLite
database in a temporary ``BREACHDESK_VAR_DIR``, on free ports) and stop every one they started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its supervisor) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM to the process we started, then to its process group if anything is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def test_it_restarts_a_command_that_exits_and_stops_it_when_told(tmp_path):
    environment = {**os.environ, "SUPERVISE_PID_DIR": str(tmp_path), "SUPERVISE_LOG": str(tmp_path / "log")}
    supervisor = subprocess.Popen(
        [str(ROOT / "scripts" / "supervise"), "dummy", "--", "sleep", "600"],
        env=environment,
        start_new_session=True,
    )
    pid_file = tmp_path / "dummy.pid"
    try:
        _wait_for(lambda: _pid(pid_file) is not None, timeout=10, what="the first child")
        first = _pid(pid_file)
        assert first is not None and _alive(first)

        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: _pid(pid_file) not in (None, first), timeout=10, what="a restarted child")
        second = _pid(pid_file)
        assert second is not None and _alive(second)
        assert "dummy (pid" in (tmp_path / "log").read_text()
        assert "exited with status 137" in (tmp_path / "log").read_text()

        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=10)
        _wait_for(lambda: not _alive(second), timeout=10, what="the child to stop with its supervisor")
        assert not pid_file.exists()
    finally:
        _stop(supervisor)


def test_it_refuses_a_call_without_a_command():
    result = subprocess.run([str(ROOT / "scripts" / "supervise"), "dummy"], capture_output=True, text=True)

    assert result.returncode == 2
    assert "usage: scripts/supervise NAME -- COMMAND" in result.stderr


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "celery").exists(), reason="needs scripts/setup's .venv")
def test_it_restarts_the_worker_of_scripts_run_when_it_is_killed(tmp_path):
    var = tmp_path / "var"
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "EMAIL_URL", "DJANGO_SETTINGS_MODULE")
    }
    environment.update(
        BREACHDESK_VAR_DIR=str(var),
        PORT=str(_free_port()),
        MAIL_SINK_PORT=str(_free_port()),
        SUPERVISE_RESET_AFTER="1",
    )
    output = tmp_path / "run.out"
    with output.open("wb") as out:
        run = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file = var / "run" / "worker.pid"
    try:
        # Set-up, migrations and the demo data on a fresh SQLite database come first.
        _wait_for(
            lambda: "Press Ctrl-C to stop." in output.read_text(errors="replace") or run.poll() is not None,
            timeout=300,
            what="scripts/run to start",
        )
        assert run.poll() is None, output.read_text(errors="replace")[-3000:]
        first = _pid(pid_file)
        assert first is not None and _alive(first)

        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: _pid(pid_file) not in (None, first), timeout=30, what="a new worker")
        second = _pid(pid_file)
        assert second is not None and _alive(second)
        assert "celery" in Path(f"/proc/{second}/cmdline").read_bytes().decode(errors="replace")
        assert f"worker (pid {first}) exited with status 137" in (var / "log" / "supervise.log").read_text()
    finally:
        _stop(run, timeout=90)
