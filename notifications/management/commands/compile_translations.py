"""``manage.py compile_translations``: build ``locale/*/LC_MESSAGES/django.mo`` with polib.

Django's own ``compilemessages`` needs GNU gettext (``msgfmt``); polib does not, so a fresh clone
gets working catalogues from ``scripts/setup`` alone. Compiled catalogues are build output and
never committed (``*.mo`` is in ``.gitignore``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import polib
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# Named printf placeholders as gettext (python-format) and blocktranslate extract them.
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]")
# A line of a .po file that is not blank or a comment: an optional keyword, then one complete
# C string. polib forgives an unterminated string by dropping its last character, which would
# silently change a msgid; this catches it.
PO_STRING_LINE = re.compile(r'(?:(?:msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+)?"(?:[^"\\]|\\.)*"\s*')


def malformed_line(text: str) -> int | None:
    """The number (from 1) of the first line of .po ``text`` that is neither blank, a comment,
    nor a keyword with a complete quoted string; ``None`` when every line is well formed."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not PO_STRING_LINE.fullmatch(stripped):
            return number
    return None


def placeholders(text: str) -> list[str]:
    """The named ``%(name)s``-style placeholders in ``text``, sorted, one entry per use."""
    return sorted(PLACEHOLDER.findall(text))


def catalogue_problems(po: polib.POFile) -> list[str]:
    """What stops ``po`` from being shipped, one short phrase per problem (``[]`` when none):
    a fuzzy header or entry, an untranslated entry, a plural entry whose number of forms
    differs from the ``Plural-Forms`` header, or a translation whose placeholders differ from
    its source text (it would raise ``KeyError`` when the notice is rendered)."""
    problems = []
    if po.metadata_is_fuzzy:
        problems.append("the header is marked fuzzy")
    match = re.search(r"nplurals\s*=\s*(\d+)", po.metadata.get("Plural-Forms", ""))
    nplurals = int(match.group(1)) if match else None
    for entry in po:
        if entry.obsolete:
            continue
        label = repr(entry.msgid if len(entry.msgid) <= 40 else entry.msgid[:39] + "…")
        if entry.fuzzy:
            problems.append(f"fuzzy entry {label}")
        elif not entry.translated():
            problems.append(f"untranslated entry {label}")
        elif entry.msgid_plural:
            if nplurals is None:
                problems.append(f"plural entry {label} but no nplurals in the Plural-Forms header")
            elif len(entry.msgstr_plural) != nplurals:
                problems.append(f"plural entry {label} has {len(entry.msgstr_plural)} forms, not {nplurals}")
            wanted = set(placeholders(entry.msgid)) | set(placeholders(entry.msgid_plural))
            for form in entry.msgstr_plural.values():
                if not set(placeholders(form)) <= wanted:
                    problems.append(f"placeholders differ in {label}")
                    break
        elif placeholders(entry.msgstr) != placeholders(entry.msgid):
            problems.append(f"placeholders differ in {label}")
    return problems


class Command(BaseCommand):
    help = (
        "Compile every <locale dir>/*/LC_MESSAGES/django.po to django.mo with polib (no GNU "
        "gettext needed). Fails, naming the file, on a broken catalogue or on a fuzzy or "
        "untranslated entry; nothing is written for a catalogue that fails."
    )
    # Runs in scripts/setup before migrations: no system checks, no database.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--locale-dir",
            action="append",
            dest="locale_dirs",
            metavar="DIR",
            help="A directory holding <language>/LC_MESSAGES/django.po (repeatable; default: "
            "settings.LOCALE_PATHS).",
        )

    def handle(
        self, *args: Any, locale_dirs: list[str] | None = None, verbosity: int = 1, **options: Any
    ) -> None:
        directories = [Path(d) for d in (locale_dirs or settings.LOCALE_PATHS)]
        catalogues = []
        for directory in directories:
            if not directory.is_dir():
                raise CommandError(f"{directory}: no such locale directory.")
            catalogues.extend(sorted(directory.glob("*/LC_MESSAGES/django.po")))
        # Check everything first, so a bad catalogue never leaves a half-updated set behind.
        parsed = [(path, self._load(path)) for path in catalogues]
        for path, po in parsed:
            target = path.with_suffix(".mo")
            _write_atomically(target, po.to_binary())
            if verbosity >= 2:
                self.stdout.write(f"Compiled {path} ({len(po.translated_entries())} messages)")
        if verbosity >= 1:
            self.stdout.write(f"Compiled {len(parsed)} translation catalogue(s).")

    def _load(self, path: Path) -> polib.POFile:
        try:
            line = malformed_line(path.read_text(encoding="utf-8"))
            if line is not None:
                raise ValueError(f"malformed line {line} (an unterminated string or stray text)")
            po = polib.pofile(str(path), check_for_duplicates=True, wrapwidth=0)
        except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
            reason = " ".join(str(error).split())
            raise CommandError(f"{path}: cannot be read as a .po catalogue: {reason}") from error
        problems = catalogue_problems(po)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CommandError(f"{path}: {problems[0]}{more}.")
        return po


def _write_atomically(target: Path, data: bytes) -> None:
    """Replace ``target`` in one step, so a running process never reads half a catalogue."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".django.", suffix=".mo.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes it owner-only; the web server may be another user
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
