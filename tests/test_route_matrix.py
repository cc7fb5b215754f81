"""The route matrix (issue 8): every route of the URLconf x every role (anonymous, responder,
incident manager, auditor, a user of no group, superuser) x every method (GET, POST, PUT, PATCH,
DELETE), checked against the permission table kept in ``tests/route_permissions.py``.

- An allowed combination is never refused: no 401, 403 or 405, no redirect to a login page.
- A refused one answers 401, 403, 404 or 405 (or redirects to a login page) and writes nothing
  (no INSERT, UPDATE or DELETE but the session's and the auditors' read log).
- None answers 5xx. A route without an entry fails, saying what to add.

Bodies are empty (``{}`` for the API): the matrix checks who may reach a route, not what it
does with good input. Each request runs in a savepoint rolled back afterwards, so every request
sees the same objects (built once per role, ``tests/routes.py``'s ``build_world``).
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection, transaction

from tests.queries import capture_queries
from tests.route_permissions import METHODS, ROLES, Entry, MissingEntry, entry_for
from tests.routes import Route, World, all_routes, build_world, client_for, routes_in_order, url_for

LOGIN_PATHS = ("/accounts/login/", "/admin/login/", "/audit/login/")
#: Where the admin sites send a user they refuse (their index then refuses or asks to log in).
SITE_INDEXES = ("/admin/", "/audit/")
#: Writes that are not changes: the session (a login, messages) and the auditors' read log.
HARMLESS_WRITES = (
    "django_session",
    "incidents_readlogentry",
    # The refusal's own record (issue 8.3: every permission denial is a security audit event).
    "incidents_securityauditevent",
)


def _writes(queries: list[dict[str, Any]]) -> list[str]:
    found = []
    for query in queries:
        sql = query["sql"].lstrip()
        verb = sql.split(None, 1)[0].upper() if sql else ""
        if verb in ("INSERT", "UPDATE", "DELETE") and not any(
            table in sql[:120] for table in HARMLESS_WRITES
        ):
            found.append(sql[:160])
    return found


def request(client: Any, route: Route, url: str, method: str, body: str = "") -> tuple[Any, list[str]]:
    """``method`` to ``url`` with an empty body (or ``body``, form-encoded), inside a savepoint
    rolled back afterwards; returns the response and the write statements it ran."""
    cookies = SimpleCookie()
    cookies.load(client.cookies.output(header="", sep=";"))
    # The log keeps 9000 queries; once full, a capture's slice of it would come back empty.
    connection.queries_log.clear()
    with capture_queries("one request") as captured, transaction.atomic():
        if method in ("GET", "DELETE"):
            response = getattr(client, method.lower())(url)
        elif route.is_api:
            response = getattr(client, method.lower())(url, "{}", content_type="application/json")
        else:
            response = getattr(client, method.lower())(
                url, body, content_type="application/x-www-form-urlencoded"
            )
        transaction.set_rollback(True)
    client.cookies = cookies  # a logout must not log the next request out
    return response, _writes([{"sql": sql} for sql in captured.statements])


def verdict(entry: Entry, method: str, allowed: bool, response: Any, writes: list[str]) -> str | None:
    """What is wrong with ``response`` for this combination, or ``None``."""
    status = response.status_code
    location = urlsplit(response.get("Location", "")).path
    redirect = 300 <= status < 400
    to_login = redirect and location.startswith(LOGIN_PATHS)
    if status >= 500:
        return f"server error {status}"
    if allowed:
        if status in (401, 403, 405) or (to_login and not entry.ends_at_login):
            return f"allowed by the table but refused ({status}{' to ' + location if location else ''})"
        if status == 404 and method == "GET" and not entry.may_answer_404:
            return "allowed by the table but 404 (does tests/routes.py build the object its URL names?)"
        if entry.read_only and writes:
            return f"read-only but wrote: {writes[0]}"
        return None
    if not (status in (401, 403, 404, 405) or to_login or (redirect and location in SITE_INDEXES)):
        return f"refused by the table but answered {status}{' to ' + location if location else ''}"
    if writes:
        return f"refused ({status}) but wrote: {writes[0]}"
    return None


def test_it_sees_the_writes_of_a_request_and_rolls_them_back(make_incident, personas, superuser):
    from incidents.models import Note

    incident = make_incident(state="triaged")
    client = client_for("incident_manager", personas, superuser)
    route = next(route for route in all_routes() if route.key == "incidents:note_add")
    connection.queries_log.extend([{"sql": "SELECT 1", "time": "0"}] * 9000)  # full, as after many requests

    response, writes = request(
        client, route, f"/incidents/{incident.pk}/notes/", "POST", body="note-text=Checked"
    )

    assert response.status_code == 302, re.findall(r"errorlist.{0,200}", response.content.decode())
    assert any("incidents_note" in write for write in writes), writes
    assert not Note.objects.filter(incident=incident).exists()


def test_it_has_an_entry_for_every_route():
    missing = []
    for route in all_routes():
        try:
            entry_for(route.key)
        except MissingEntry as error:
            missing.append(str(error))
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("role", ROLES)
def test_it_answers_every_route_as_the_table_says(
    role, make_incident, personas, superuser, settings, tmp_path
):
    world: World = build_world(make_incident, personas, superuser, settings, tmp_path)
    client = client_for(role, personas, superuser)
    problems = []
    for route in routes_in_order():
        try:
            entry = entry_for(route.key)
        except MissingEntry:
            continue  # test_it_has_an_entry_for_every_route names it
        url = url_for(route, world)
        for method in METHODS:
            allowed = role in entry.allowed(method)
            response, writes = request(client, route, url, method)
            problem = verdict(entry, method, allowed, response, writes)
            if problem:
                problems.append(f"{method} {url} ({route.key}) as {role}: {problem}")
    assert not problems, (
        f"{len(problems)} combinations differ from tests/route_permissions.py:\n" + "\n".join(problems)
    )
