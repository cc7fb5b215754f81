"""A throwaway database for the benchmarks, so they never touch real data.

With ``DATABASE_URL=postgres://...`` a database named ``bench_breachdesk`` (or the name given)
is created next to the configured one and dropped afterwards; otherwise a temporary SQLite
file. Celery publishes to a filesystem broker in a temporary folder (nothing consumes it), so
the wake-ups that services queue on commit go nowhere and the benchmark drives the sender itself.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent

# The benchmarks serve plain HTTP on loopback and log in with a password: no HTTPS redirect,
# no second factor (README "Production", "Sign-in"); set them to measure with either on.
os.environ.setdefault("HTTPS_ONLY", "false")
os.environ.setdefault("TWO_FACTOR_REQUIRED", "false")


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://", "pgsql://"))


def _libpq_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return parts._replace(scheme="postgresql", path=f"/{database}").geturl()


@contextmanager
def throwaway_database(name: str = "bench_breachdesk") -> Iterator[str]:
    """Create and migrate a fresh database, set Django up on it, and yield its vendor
    (``postgresql`` or ``sqlite``); drop it (and the temporary folder) afterwards."""
    sys.path.insert(0, str(REPO))
    configured = os.environ.get("DATABASE_URL", "")
    var_dir = tempfile.mkdtemp(prefix="breachdesk-bench-")
    os.environ["BREACHDESK_VAR_DIR"] = var_dir
    os.environ["CELERY_BROKER_URL"] = "filesystem://"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    admin_url = None
    if _is_postgres(configured):
        import psycopg

        admin_url = _libpq_url(configured, "postgres")
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = urlsplit(configured)._replace(path=f"/{name}").geturl()
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{var_dir}/bench.sqlite3"
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        yield connection.vendor
    finally:
        with suppress(Exception):  # Django may not have been set up
            from django.db import connections

            connections.close_all()
        if admin_url is not None:
            import psycopg

            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)
