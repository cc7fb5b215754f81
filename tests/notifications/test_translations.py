"""Customer notices in German, French, Spanish and Japanese: the catalogues are complete and
match the code, every notice goes out in the contact's language with nothing left in English,
and ``compile_translations`` refuses a catalogue it cannot ship."""

from __future__ import annotations

import ast
import email
import email.policy
import gettext
import html
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.template import engines
from django.template.backends.django import DjangoTemplates
from django.templatetags.i18n import BlockTranslateNode, TranslateNode
from django.test import override_settings

from notifications.rendering import FIELD_LABELS
from notifications.sender import deliveries_send_due
from notifications.services import notice_draft, notice_preview
from tests.notifications.support import approve

ROOT = Path(settings.BASE_DIR)
LOCALE_DIR = ROOT / "locale"
TRANSLATED_LANGUAGES = ["de", "fr", "es", "ja"]
NPLURALS = {"de": 2, "fr": 3, "es": 3, "ja": 1}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]")
NOT_YET_KNOWN = "Not yet known; a follow-up notice will come."
GETTEXT_FUNCTIONS = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext", "pgettext_lazy"}


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogues():
    """Compile the catalogues as scripts/setup does, so the module also runs under bare pytest,
    and drop the translations this process cached before they existed (overriding
    ``LOCALE_PATHS`` makes Django reload them)."""
    call_command("compile_translations", verbosity=0)
    with override_settings(LOCALE_PATHS=list(settings.LOCALE_PATHS)):
        yield


def _catalogue(language: str) -> polib.POFile:
    return polib.pofile(str(LOCALE_DIR / language / "LC_MESSAGES" / "django.po"))


def _translation(language: str, msgid: str, context: str | None = None) -> str:
    entry = next(
        (
            entry
            for entry in _catalogue(language)
            if not entry.obsolete and entry.msgid == msgid and entry.msgctxt == context
        ),
        None,
    )
    assert entry is not None, f"{language}: {msgid!r} is not in the catalogue"
    return entry.msgstr


def _is_notice_entry(entry: polib.POEntry) -> bool:
    """Whether ``entry`` comes from the notice code (its templates or ``rendering.py``)."""
    return any(
        path.startswith("templates/notices/") or path == "notifications/rendering.py"
        for path, _line in entry.occurrences
    )


def _english_fragments(po: polib.POFile) -> list[str]:
    """The English source text of every entry, cut at its placeholders, in pieces long enough
    that their presence means an untranslated sentence (not a shared word)."""
    fragments = []
    for entry in po:
        if entry.msgid_plural or entry.msgstr == entry.msgid or not _is_notice_entry(entry):
            continue
        for piece in PLACEHOLDER.split(entry.msgid)[::2]:
            piece = piece.strip(" ,.:;()")
            if len(piece) >= 8:
                fragments.append(piece)
    return fragments


def _source_messages() -> set[tuple[str | None, str]]:
    """``(context, msgid)`` of every translatable string in the notice code and templates, read
    the way makemessages reads them (template i18n nodes, gettext calls in Python)."""
    messages: set[tuple[str | None, str]] = set()
    django_engine = engines["django"]
    assert isinstance(django_engine, DjangoTemplates)
    for path in sorted((ROOT / "templates" / "notices").rglob("*")):
        if not path.is_file():
            continue
        nodelist = django_engine.from_string(path.read_text()).template.nodelist
        for node in nodelist.get_nodes_by_type(TranslateNode):
            assert isinstance(node, TranslateNode)
            context = node.message_context.var if node.message_context else None
            messages.add((context, str(node.filter_expression.var.literal)))
        for node in nodelist.get_nodes_by_type(BlockTranslateNode):
            assert isinstance(node, BlockTranslateNode)
            context = node.message_context.var if node.message_context else None
            messages.add((context, node.render_token_list(node.singular)[0]))
    tree = ast.parse((ROOT / "notifications" / "rendering.py").read_text())
    for call in ast.walk(tree):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id in GETTEXT_FUNCTIONS
        ):
            strings = [
                arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
            if call.func.id.startswith("pgettext"):
                messages.add((strings[0], strings[1]))
            else:
                messages.add((None, strings[0]))
    return messages


# Catalogues --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_it_keeps_every_catalogue_complete_with_no_fuzzy_or_empty_entry(language):
    po = _catalogue(language)

    assert po.metadata["Language"] == language
    assert not po.metadata_is_fuzzy
    assert po.untranslated_entries() == []
    assert po.fuzzy_entries() == []
    assert po.obsolete_entries() == []
    assert f"nplurals={NPLURALS[language]};" in po.metadata["Plural-Forms"].replace(" ", "")
    for entry in po:
        if entry.msgid_plural:
            assert len(entry.msgstr_plural) == NPLURALS[language], entry.msgid
            assert all(form.strip() for form in entry.msgstr_plural.values()), entry.msgid
        else:
            assert entry.msgstr.strip(), entry.msgid
            # A copied English sentence is not a translation; only punctuation may stay as is.
            assert entry.msgstr != entry.msgid or not re.search(r"[A-Za-z]", entry.msgid), entry.msgid


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_it_preserves_every_placeholder_in_translations(language):
    for entry in _catalogue(language):
        if entry.msgid_plural:
            for form in entry.msgstr_plural.values():
                assert sorted(PLACEHOLDER.findall(form)) == sorted(PLACEHOLDER.findall(entry.msgid_plural)), (
                    form
                )
        else:
            assert sorted(PLACEHOLDER.findall(entry.msgstr)) == sorted(PLACEHOLDER.findall(entry.msgid)), (
                entry.msgstr
            )


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_it_catalogues_every_string_of_the_notices_and_nothing_third_party(language):
    po = _catalogue(language)
    catalogued = {(entry.msgctxt, entry.msgid) for entry in po}

    assert _source_messages() - catalogued == set()  # run makemessages after adding a string
    notice_entries = [entry for entry in po if _is_notice_entry(entry)]
    assert {(entry.msgctxt, entry.msgid) for entry in notice_entries} == _source_messages()
    for entry in po:
        for path, _line in entry.occurrences:
            assert not path.startswith((".venv", "var/", "tests/")) and "site-packages" not in path, path


# Rendered notices --------------------------------------------------------------------------


@pytest.fixture
def spanish_customer(db):
    """A customer with one administrative contact reading Spanish."""
    from incidents.models import Contact, Customer

    customer = Customer.objects.create(
        name="Martínez Hermanos SL", account_reference="MARTINEZ", preferred_language="es"
    )
    Contact.objects.create(
        customer=customer, name="Lucía Martínez", email="lucia@martinez.example", language="es"
    )
    return customer


def test_it_sends_every_contact_the_initial_notice_with_nothing_left_in_english(
    smtp_server, declare_for, multilingual_customers, spanish_customer, manager
):
    incident = declare_for([*multilingual_customers, spanish_customer])

    approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    deliveries_send_due()

    by_language = {received.message["Content-Language"]: received for received in smtp_server.received}
    assert sorted(by_language) == ["de", "en", "es", "fr", "ja"]
    for language in TRANSLATED_LANGUAGES:
        message = by_language[language]
        po = _catalogue(language)
        subject = _translation(language, "Personal data breach notice %(reference)s") % {
            "reference": incident.reference
        }
        assert message.message["Subject"] == subject
        for part in (message.text(), html.unescape(message.html())):
            for label in FIELD_LABELS.values():
                assert _translation(language, str(label)) in part, (language, label)
            assert _translation(language, NOT_YET_KNOWN) in part
            assert _translation(language, "Contact point for questions") in part
            for english in _english_fragments(po):
                assert english not in part, (language, english)
    english = by_language["en"]
    assert NOT_YET_KNOWN in english.text() and "Nature of the breach" in english.text()


def test_it_sends_japanese_as_valid_utf8_with_a_subject_that_decodes(
    smtp_server, declare_for, multilingual_customers, manager, tmp_path
):
    smtp_server.folder = tmp_path
    incident = declare_for(multilingual_customers[2:3])

    approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    deliveries_send_due()

    (raw,) = [path.read_bytes() for path in tmp_path.glob("*.eml")]
    headers = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    assert headers.isascii()  # non-ASCII headers travel as RFC 2047 encoded words
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == f"個人データ侵害に関する通知 {incident.reference}"
    parts = [part for part in message.walk() if part.get_content_maintype() == "text"]
    assert {part.get_content_type() for part in parts} == {"text/plain", "text/html"}
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        text = payload.decode("utf-8")  # strict: raises on invalid UTF-8
        assert "侵害の性質" in text and "現時点では不明です。" in text


DURATION = {  # 1 day 2 hours 30 minutes, as Babel (CLDR) writes it in each language
    "de": "1 Tag, 2 Stunden und 30 Minuten",
    "fr": "1\u00a0jour, 2\u00a0heures et 30 minutes",  # CLDR: no-break spaces
    "es": "1 día, 2 horas y 30 minutos",
    "ja": "1 日、2 時間、30 分",
}


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_it_translates_subjects_changes_and_durations_of_updates_and_final_notices(
    declare_for, multilingual_customers, manager, language
):
    from incidents import services as incident_services

    incident = declare_for(multilingual_customers[:1])
    approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    incident_services.incident_update(
        incident=incident,
        actor=manager,
        changes={
            "mitigation_measures": "Passwords reset.",
            "exposure_started_at": datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
            "exposure_ended_at": datetime(2026, 11, 21, 10, 30, tzinfo=UTC),
        },
    )
    labels = [  # in notice order
        _translation(language, "When and for how long personal data was exposed"),
        _translation(language, "Measures taken or proposed to address the breach"),
    ]
    changed_line = _translation(language, "Changed since our previous notice: %(labels)s") % {
        "labels": _translation(language, ", ", context="list separator").join(labels)
    }
    marked_label = (
        labels[1]
        + " "
        + _translation(language, "(changed)", context="marker after a notice field's label")
        + _translation(language, ":", context="label suffix")
    )

    for kind, subject_msgid in [
        ("update", "Update %(number)s on personal data breach %(reference)s"),
        ("final", "Final notice on personal data breach %(reference)s"),
    ]:
        draft = notice_draft(incident=incident, actor=manager, kind=kind)
        rendered = notice_preview(notice=draft, language=language)

        expected = _translation(language, subject_msgid) % {
            "number": 1,  # the first update is "update 1", whatever its notice number
            "reference": incident.reference,
        }
        assert rendered.subject == " ".join(expected.split())
        assert changed_line in rendered.text and changed_line in html.unescape(rendered.html)
        assert marked_label in rendered.text
        assert DURATION[language] in rendered.text and DURATION[language] in rendered.html
        assert "Changed since" not in rendered.text and "(changed)" not in rendered.text
        assert "1 day" not in rendered.text and "2 hours" not in rendered.text
    if language == "ja":
        assert "、" in changed_line and "侵害の性質：" in rendered.text  # Japanese punctuation


# compile_translations ----------------------------------------------------------------------

VALID_PO = """\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Language: xx\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"

msgid "Likely consequences"
msgstr "Conséquences probables"

#, python-format
msgid "%(count)d day"
msgid_plural "%(count)d days"
msgstr[0] "%(count)d jour"
msgstr[1] "%(count)d jours"
"""

BROKEN: dict[str, str | bytes] = {
    "unterminated string": VALID_PO + '\nmsgid "Contact point for questions\nmsgstr "x"\n',
    "syntax": VALID_PO + '\nmsgid "a"\nmsgstr "b"\nmsgstr "c"\n',
    "not utf-8": (VALID_PO + '\nmsgid "Summary"\nmsgstr "Résumé"\n').encode("latin-1"),
    "duplicate": VALID_PO + '\nmsgid "Likely consequences"\nmsgstr "Autre"\n',
    "fuzzy": VALID_PO + '\n#, fuzzy\nmsgid "Contact point for questions"\nmsgstr "Contact"\n',
    "untranslated": VALID_PO + '\nmsgid "Contact point for questions"\nmsgstr ""\n',
    "placeholders": VALID_PO
    + '\n#, python-format\nmsgid "about %(count)s (estimate)"\nmsgstr "environ %(nombre)s"\n',
    "plural forms": VALID_PO.replace('msgstr[1] "%(count)d jours"\n', ""),
}


def _write_catalogue(locale_dir: Path, content: str | bytes) -> Path:
    path = locale_dir / "xx" / "LC_MESSAGES" / "django.po"
    path.parent.mkdir(parents=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_it_compiles_a_catalogue_that_django_then_reads(tmp_path):
    path = _write_catalogue(tmp_path, VALID_PO)

    call_command("compile_translations", "--locale-dir", str(tmp_path), verbosity=0)

    with path.with_suffix(".mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)  # the reader Django's translations build on
    assert catalogue.gettext("Likely consequences") == "Conséquences probables"
    assert catalogue.ngettext("%(count)d day", "%(count)d days", 1) == "%(count)d jour"
    assert catalogue.ngettext("%(count)d day", "%(count)d days", 3) == "%(count)d jours"


@pytest.mark.parametrize("problem", sorted(BROKEN))
def test_it_refuses_a_broken_catalogue_naming_the_file_and_writes_nothing(tmp_path, problem):
    path = _write_catalogue(tmp_path, BROKEN[problem])

    with pytest.raises(CommandError) as error:
        call_command("compile_translations", "--locale-dir", str(tmp_path), verbosity=0)

    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert not path.with_suffix(".mo").exists()


def test_it_exits_non_zero_with_one_line_and_needs_no_database(tmp_path):
    path = _write_catalogue(tmp_path, BROKEN["fuzzy"])
    # An unreachable database: the command must never try it (scripts/setup runs before migrate).
    environment = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    command = [sys.executable, str(ROOT / "manage.py"), "compile_translations", "--locale-dir", str(tmp_path)]

    refused = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT, timeout=60)
    path.write_text(VALID_PO, encoding="utf-8")
    compiled = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT, timeout=60)

    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        f"CommandError: {path}: fuzzy entry 'Contact point for questions'."
    ]
    assert compiled.returncode == 0, compiled.stderr
    assert path.with_suffix(".mo").exists()
