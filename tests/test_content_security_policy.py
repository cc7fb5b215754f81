"""Django 6's Content-Security-Policy on every page (issue 8.5): every page any role can reach
with GET carries the header, and none has an inline script (a ``<script>`` without ``src``),
an inline style (``<style>``, a ``style=`` attribute) or an event handler attribute (``on…=``),
which the policy (``SECURE_CSP``: scripts and styles from our own static files only) would block.
The templates themselves are checked too, so a page the matrix cannot reach is covered."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import cast

import pytest
from django.conf import settings

from tests.route_permissions import ROLES
from tests.routes import build_world, client_for, routes_in_order, url_for

ROOT = Path(__file__).resolve().parents[1]
#: Email templates carry inline styles on purpose (mail clients ignore style sheets); they are
#: never served as a page: the notice preview shows them in a sandboxed frame (srcdoc).
EMAIL_TEMPLATES = ("templates/emails/", "templates/notices/")


class InlineCode(HTMLParser):
    """Collects what a Content-Security-Policy without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…> (event handler)")
            if name == "style":
                self.found.append(f"<{tag} style=…> (inline style)")
        if tag == "style":
            self.found.append("<style> (inline style)")
        # A JSON data block (json_script) is data, not code: the policy does not apply to it.
        if tag == "script" and not names.get("src") and names.get("type") != "application/json":
            self._script_without_src = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script_without_src:
            self.found.append("<script> without src (inline script)")
            self._script_without_src = False


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def test_it_finds_inline_code_in_html():
    html = '<p style="x">a</p><button onclick="go()">b</button><script>alert(1)</script><style>p{}</style>'

    assert len(inline_code(html)) == 4
    assert (
        inline_code('<script src="/static/a.js"></script><script type="application/json">{}</script>') == []
    )


def test_it_puts_no_inline_code_in_any_page_template():
    problems = []
    for template in sorted(
        [*ROOT.glob("templates/**/*.html"), *ROOT.glob("*/templates/**/*.html")], key=lambda path: str(path)
    ):
        relative = str(template.relative_to(ROOT))
        if relative.startswith(EMAIL_TEMPLATES) or relative.startswith(".venv"):
            continue
        text = template.read_text(encoding="utf-8")
        # Template tags would confuse the parser; inline code is plain markup either way.
        found = inline_code(re.sub(r"{%.*?%}|{{.*?}}", "x", text, flags=re.S))
        problems += [f"{relative}: {what}" for what in found]
    assert not problems, "\n".join(problems)


def test_it_sets_a_policy_that_allows_no_inline_script_or_style():
    policy = cast("dict[str, list[str]]", settings.SECURE_CSP)

    for directive in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in policy[directive]
        assert "'unsafe-eval'" not in policy[directive]
    assert "django.middleware.csp.ContentSecurityPolicyMiddleware" in settings.MIDDLEWARE


@pytest.mark.parametrize("role", ROLES)
def test_it_sends_the_policy_and_no_inline_code_on_every_page(
    role, make_incident, personas, superuser, settings, tmp_path
):
    world = build_world(make_incident, personas, superuser, settings, tmp_path)
    client = client_for(role, personas, superuser)
    problems, pages = [], 0
    for route in routes_in_order():
        url = url_for(route, world)
        response = client.get(url)
        if not response.get("Content-Type", "").startswith("text/html"):
            continue
        pages += 1
        if "Content-Security-Policy" not in response:
            problems.append(f"GET {url} ({route.key}) as {role}: no Content-Security-Policy header")
        body = response.content.decode("utf-8", errors="replace")
        problems += [f"GET {url} ({route.key}) as {role}: {what}" for what in inline_code(body)]
    assert pages > 0
    assert not problems, "\n".join(problems)
