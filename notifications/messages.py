"""Building notice emails once and sending them many times.

A notice goes to thousands of contacts, but its content differs only per (customer, language).
``build_body`` turns one rendered notice into the bytes of its MIME body (``MIME-Version``, a
``multipart/alternative`` with the plain-text and HTML parts in UTF-8) and its encoded
``Subject`` header, once; ``delivery_bytes`` prepends the few headers that differ per contact
(From, To, Date, Message-ID, In-Reply-To, References, Content-Language). The sender then hands
those bytes to the relay over its SMTP connection: no per-message MIME generation, which cost
more than the SMTP exchange itself (docs/performance.md).

The parts are encoded with the C codecs of ``binascii`` (quoted-printable for mostly-ASCII
text, base64 otherwise), and the headers are folded and encoded (RFC 2047) by the standard
library's ``email.header``: every line ends in CRLF and stays under 78 characters. The
stdlib parser reads the result back exactly (``tests/notifications/test_messages.py``).
"""

from __future__ import annotations

import binascii
import email.utils
import smtplib
import uuid
from datetime import datetime
from email.header import Header
from functools import lru_cache

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.utils import timezone

from incidents.addresses import header_text, recipient
from incidents.mail import envelope_address, send_raw

_NON_ASCII = bytes(range(128, 256))


@lru_cache(maxsize=1024)  # a notice's subject is the same for every customer in one language
def fold_header(name: str, value: str) -> str:
    """``"Name: value\\r\\n"`` folded at 78 characters, RFC 2047-encoded where not ASCII, with
    surrounding and repeated whitespace, line breaks and other control characters removed from
    ``value`` (``incidents.addresses.header_text``).

    ``email.header.Header`` folds after the first word; the modern policy's folder sometimes
    breaks right after the colon, which readers then show as a subject starting with a space.
    """
    value = header_text(value)
    if value.isascii() and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}\r\n"  # what Header gives for a line that needs no folding
    charset = "us-ascii" if value.isascii() else "utf-8"
    return (
        f"{name}: " + Header(value, charset, header_name=name).encode(linesep="\r\n", maxlinelen=78) + "\r\n"
    )


def address_header(name: str, address: str) -> str:
    """An address header (``From``, ``To``) with the display name encoded where not ASCII."""
    display, addr = email.utils.parseaddr(address)
    return f"{name}: {email.utils.formataddr((header_text(display), addr), charset='utf-8')}\r\n"


def recipient_header(name: str, display_name: str, address: str) -> str:
    """An address header (``To``) for one recipient: ``display_name`` quoted, or RFC 2047-encoded
    where not ASCII (a comma in it stays in the name), ``address`` normalised (IDNA 2008), the
    line folded at 78 characters. Raises ``ValidationError`` for an address that cannot be
    normalised (``incidents.addresses.recipient``)."""
    return fold_header(name, recipient(display_name, address).header)


def _encode_part(text: str, subtype: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
    non_ascii = len(data) - len(data.translate(None, _NON_ASCII))
    if non_ascii * 8 > len(data):  # mostly non-Latin text (Japanese): base64 is shorter
        encoding = "base64"
        raw = binascii.b2a_base64(data, newline=False)
        body = b"\r\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))
    else:
        encoding = "quoted-printable"
        body = binascii.b2a_qp(data, istext=True).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode("ascii")
        + body
        + b"\r\n"
    )


def build_body(*, subject: str, text: str, html: str | None) -> tuple[str, bytes]:
    """The encoded ``Subject`` header line and the MIME body (headers ``MIME-Version`` and
    ``Content-Type`` included) of one rendered notice; without ``html``, a single text part.
    The boundary contains "==", which neither quoted-printable nor base64 output can contain."""
    if html is None:
        return fold_header("Subject", subject), b"MIME-Version: 1.0\r\n" + _encode_part(text, "plain")
    boundary = f"==breachdesk-{uuid.uuid4().hex}=="
    body = (
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode()
        + f"--{boundary}\r\n".encode()
        + _encode_part(text, "plain")
        + f"--{boundary}\r\n".encode()
        + _encode_part(html, "html")
        + f"--{boundary}--\r\n".encode()
    )
    return fold_header("Subject", subject), body


def references_header(message_ids: list[str]) -> str:
    """A ``References`` header with one Message-ID per folded line (``""`` for none)."""
    if not message_ids:
        return ""
    return "References: " + "\r\n ".join(message_ids) + "\r\n"


def delivery_bytes(
    *,
    from_header: str,
    to_address: str,
    message_id: str,
    in_reply_to: str,
    references: list[str],
    language: str,
    subject_header: str,
    body: bytes,
    date: datetime,
    to_name: str = "",
) -> bytes:
    """One contact's message: its own headers, then the shared subject and body. ``to_name``:
    the contact's name, shown in ``To`` (``recipient_header``). Raises ``ValueError`` for an
    address or Message-ID that is not plain ASCII or carries a line break (the caller sends
    such a message through Django's mail API instead)."""
    for value in (to_address, message_id, in_reply_to, *references):
        if not value.isascii() or "\r" in value or "\n" in value:
            raise ValueError(f"Not a plain ASCII header value: {value!r}")
    headers = (
        from_header
        + recipient_header("To", to_name, to_address)
        + f"Date: {email.utils.format_datetime(date)}\r\n"
        + f"Message-ID: {message_id}\r\n"
        + (f"In-Reply-To: {in_reply_to}\r\n" if in_reply_to else "")
        + references_header(references)
        + f"Content-Language: {language}\r\n"
        + subject_header
    )
    return headers.encode("ascii") + body


def send_plain_email(
    *, connection: BaseEmailBackend, to: list[str], subject: str, text: str, message_id: str
) -> int:
    """Send one plain-text email (an escalation) to ``to`` over ``connection`` (a Django mail
    backend), with the headers folded as notices' are; returns how many recipients the relay
    accepted. Through Django's SMTP backend the bytes go straight to the relay; through any
    other backend (console, file, memory) as a Django ``EmailMessage``. The addresses are
    normalised (IDNA 2008; ``incidents.mail.AddressNotEncodable``, a ``ValueError``, for one
    that cannot be) and the subject cleaned of line breaks (``header_text``)."""
    to = [envelope_address(address) for address in to]
    if not isinstance(connection, SMTPBackend) or not all(address.isascii() for address in to):
        message = EmailMessage(
            subject=header_text(subject),
            body=text,
            to=to,
            headers={"Message-ID": message_id},
            connection=connection,
        )
        return message.send()
    subject_header, body = build_body(subject=subject, text=text, html=None)
    headers = (
        address_header("From", settings.DEFAULT_FROM_EMAIL)
        + fold_header("To", ", ".join(to))
        + f"Date: {email.utils.format_datetime(timezone.now())}\r\n"
        + f"Message-ID: {message_id}\r\n"
        + subject_header
    )
    with connection:
        smtp = connection.connection
        if smtp is None:  # the backend could not open a connection (fail_silently)
            raise smtplib.SMTPServerDisconnected("No connection to the mail relay.")
        refused = send_raw(
            smtp, email.utils.parseaddr(settings.DEFAULT_FROM_EMAIL)[1], to, headers.encode("ascii") + body
        )
    return len(to) - len(refused)
