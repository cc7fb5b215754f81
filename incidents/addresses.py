"""Email addresses and header values, done once and right (issue 8, "Addresses done right").

- ``normalise_email``: the form an address is stored and sent in. The domain goes through IDNA
  2008 with the UTS #46 mapping (the ``idna`` package): ``info@faß.de`` is
  ``info@xn--fa-hia.de`` (IDNA 2003, which Python's ``"idna"`` codec and Django's SMTP backend
  use, maps ß to ss and sends the notice to ``fass.de``, another domain), ``a@ς.example`` keeps
  its final sigma (``xn--3xa.example``), ``例え.jp`` is ``xn--r8jz45g.jp``. The local part is kept
  as written (RFC 5321 §2.4: it may be case-sensitive); a non-ASCII local part (RFC 6531) can
  only be delivered through a relay that offers SMTPUTF8 (``incidents.mail.EmailBackend``).
- ``recipient``: the SMTP envelope address and the RFC 5322 ``To`` value with the display name
  quoted or RFC 2047-encoded (a comma in a name stays inside the name).
- ``header_text``: any value on its way into a header, without CR, LF or other control
  characters and with its whitespace folded to single spaces (a customer named with a CR/LF
  must not stop its escalation emails).
- Validators for the single-line fields that reach a header (``validate_single_line``), email
  addresses (``validate_email_address``), language codes (``validate_language_code``, from
  ``settings.LANGUAGES``) and countries (``validate_country_code``, ISO 3166-1 alpha-2 through
  django-countries).
"""

from __future__ import annotations

import email.utils
import re
import unicodedata
from dataclasses import dataclass
from email.charset import Charset
from typing import Any

import idna
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

#: Characters a header value must not carry: line breaks (CR, LF, and Unicode's line and
#: paragraph separators, NEL) and every other control character (Unicode category Cc).
_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _is_control(character: str) -> bool:
    return character in _LINE_BREAKS or unicodedata.category(character) == "Cc"


def header_text(value: object) -> str:
    """``value`` as text fit for an email header: control characters (CR and LF among them)
    become spaces, runs of whitespace fold to one space, and the ends are stripped.

    ``None`` gives ``""``. Folding into lines of at most 78 characters is the serialiser's job
    (``notifications.messages.fold_header``, the email package's policies); this makes sure
    nothing in the value can end the header early or start another one (header injection)."""
    if value is None:
        return ""
    text = str(value)
    # Printable text (most values) holds no control character and no line break: every Cc
    # character and U+2028/U+2029 are unprintable, so only other text is read character by
    # character.
    if not text.isprintable() and any(_is_control(character) for character in text):
        text = "".join(" " if _is_control(character) else character for character in text)
    return " ".join(text.split())


def has_line_break(value: str) -> bool:
    """Whether ``value`` holds a line break or another control character (tab excepted)."""
    if value.isprintable():  # no Cc character, no U+2028/U+2029: nothing to read one by one
        return False
    return any(_is_control(character) and character != "\t" for character in value)


def validate_single_line(value: Any) -> None:
    """Refuse a line break (CR, LF, U+2028...) or another control character in a single-line
    field whose value may reach an email header (titles, names, references). Raises
    ``ValidationError`` (code ``line_break``)."""
    if isinstance(value, str) and has_line_break(value):
        raise ValidationError(
            "This must be a single line: line breaks and control characters are not allowed.",
            code="line_break",
        )


def _encode_domain(domain: str, address: str) -> str:
    if domain.isascii():
        # Nothing to encode (an address literal, RFC 5321 §4.1.3, among them): lower case only.
        # Whether it is a valid host name is validate_email's question on input; at send time
        # the relay may try what it was given before.
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as error:
        raise ValidationError(
            f"The domain of {address!r} cannot be encoded for email (IDNA 2008): {error}.",
            code="invalid_domain",
        ) from None


def normalise_email(address: str) -> str:
    """The form ``address`` is stored, compared and sent in: stripped, the domain (after the
    last ``@``) encoded with IDNA 2008 and the UTS #46 mapping (so in lower case and ASCII), the
    local part unchanged.

    ``"Info@Faß.DE "`` gives ``"Info@xn--fa-hia.de"``; an ASCII domain is only put in lower
    case. Raises ``ValidationError`` (code ``invalid_domain``) with the reason when a non-ASCII
    domain cannot be encoded (an empty label, a character IDNA 2008 does not allow, a hyphen at
    a label's end), ``invalid`` when there is no ``@``, no local part, or a control character. Source: RFC 5890-5893 (IDNA 2008), UTS #46, RFC 5321
    §2.4 (the local part may be case-sensitive).
    """
    text = address.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise ValidationError(f"{address!r} is not an email address: expected name@domain.", code="invalid")
    if has_line_break(text) or "\t" in text:
        raise ValidationError(
            "An email address cannot contain line breaks or control characters.", code="invalid"
        )
    return f"{local}@{_encode_domain(domain, address)}"


def needs_smtputf8(address: str) -> bool:
    """Whether ``address`` (normalised) can only be sent with the SMTPUTF8 extension (RFC 6531):
    its local part is not ASCII."""
    return not address.isascii()


def validate_email_address(value: Any) -> None:
    """Refuse what is not a deliverable email address: Django's ``validate_email`` on the
    normalised address, with a non-ASCII local part allowed (RFC 6531; delivered only through
    a relay that offers SMTPUTF8). Raises ``ValidationError`` with the reason."""
    if not isinstance(value, str):
        raise ValidationError("Enter a valid email address.", code="invalid")
    normalised = normalise_email(value)
    local, _at, domain = normalised.rpartition("@")
    # RFC 6531 extends atext with every non-ASCII character: stand them in with an ASCII letter.
    validate_email(f"{_NON_ASCII.sub('a', local)}@{domain}")


class EmailAddressFormField(forms.EmailField):
    """A form's email field that accepts what ``validate_email_address`` accepts (an IDNA
    domain, a non-ASCII local part) and cleans to the normalised address."""

    default_validators = [validate_email_address]

    def to_python(self, value: Any) -> str:
        text = super().to_python(value) or ""
        if not text:
            return text
        try:
            return normalise_email(text)
        except ValidationError:
            return text  # the validator reports it, with its reason


class EmailAddressField(models.EmailField):
    """An email address column: validated by ``validate_email_address`` instead of Django's
    ASCII-only ``validate_email``; its form field is ``EmailAddressFormField``."""

    default_validators = [validate_email_address]

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"form_class": EmailAddressFormField, **kwargs})


@dataclass(frozen=True)
class Recipient:
    """Where an email goes: ``envelope`` (the SMTP ``RCPT TO`` address, normalised) and
    ``header`` (the RFC 5322 ``To`` value: the display name quoted, or RFC 2047-encoded where
    not ASCII, then ``<envelope>``). ``smtputf8``: the envelope needs the SMTPUTF8 extension."""

    envelope: str
    header: str

    @property
    def smtputf8(self) -> bool:
        return needs_smtputf8(self.envelope)


def format_address(name: str, address: str) -> str:
    """``name <address>`` as an RFC 5322 mailbox: ``name`` cleaned by ``header_text``, quoted
    when it holds specials (a comma, a dot...), RFC 2047-encoded when not ASCII; just
    ``address`` without a name. ``address`` is used as given (normalise it first)."""
    display = header_text(name)
    if not display:
        return address
    if address.isascii():
        return email.utils.formataddr((display, address), charset="utf-8")
    # An SMTPUTF8 address: formataddr insists on an ASCII address, the name is formatted alike.
    if display.isascii():
        quoted = email.utils.formataddr((display, "x@x"))[: -len(" <x@x>")]
    else:
        quoted = Charset("utf-8").header_encode(display)
    return f"{quoted} <{address}>"


def recipient(name: str, address: str) -> Recipient:
    """The envelope address and ``To`` value for ``address`` with display name ``name`` (may
    be empty). ``recipient("Bennett, Olivia", "olivia@faß.de")`` gives envelope
    ``olivia@xn--fa-hia.de`` and header ``"Bennett, Olivia" <olivia@xn--fa-hia.de>``. Raises
    ``ValidationError`` as ``normalise_email`` does."""
    envelope = normalise_email(address)
    return Recipient(envelope=envelope, header=format_address(name, envelope))


def language_codes() -> tuple[str, ...]:
    """The language codes a customer or contact may have: those of ``settings.LANGUAGES``
    (the languages the notices are written in)."""
    return tuple(code for code, _name in settings.LANGUAGES)


def validate_language_code(value: Any) -> None:
    """Refuse a language code that is not one of ``settings.LANGUAGES`` (empty is left to the
    field's ``blank``). Raises ``ValidationError`` (code ``invalid_language``)."""
    if value in ("", None):
        return
    codes = language_codes()
    if value not in codes:
        raise ValidationError(
            f"{value!r} is not a language we write notices in; use one of {', '.join(codes)}.",
            code="invalid_language",
        )


def validate_country_code(value: Any) -> None:
    """Refuse what is not an ISO 3166-1 alpha-2 country code in upper case (``DE``; empty is
    left to the field's ``blank``), as django-countries lists them. Raises ``ValidationError``
    (code ``invalid_country``)."""
    if value in ("", None):
        return
    from django_countries import countries

    if not isinstance(value, str) or len(value) != 2 or value not in countries:
        raise ValidationError(
            f"{value!r} is not an ISO 3166-1 alpha-2 country code (two capital letters, such as DE).",
            code="invalid_country",
        )
