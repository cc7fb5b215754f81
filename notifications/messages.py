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
library's ``email.policy.SMTP``: every line ends in CRLF and stays under 78 characters. The
stdlib parser reads the result back exactly (``tests/notifications/test_messages.py``).
"""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import uuid
from datetime import datetime

_POLICY = email.policy.SMTP


def fold_header(name: str, value: str) -> str:
    """``"Name: value\\r\\n"`` folded at 78 characters, RFC 2047-encoded where not ASCII, with
    surrounding and repeated whitespace (and any line break) removed from ``value``."""
    return _POLICY.fold(name, " ".join(value.split()))


def _encode_part(text: str, subtype: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
    non_ascii = sum(byte > 127 for byte in data)
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


def build_body(*, subject: str, text: str, html: str) -> tuple[str, bytes]:
    """The encoded ``Subject`` header line and the MIME body (headers ``MIME-Version`` and
    ``Content-Type`` included) of one rendered notice. The boundary contains "==", which
    neither quoted-printable nor base64 output can contain."""
    boundary = f"==breachdesk-{uuid.uuid4().hex}=="
    body = (
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
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
) -> bytes:
    """One contact's message: its own headers, then the shared subject and body. Raises
    ``ValueError`` for an address or Message-ID that is not plain ASCII or carries a line break
    (the caller sends such a message through Django's mail API instead)."""
    for value in (to_address, message_id, in_reply_to, *references):
        if not value.isascii() or "\r" in value or "\n" in value:
            raise ValueError(f"Not a plain ASCII header value: {value!r}")
    headers = (
        from_header
        + f"To: {to_address}\r\n"
        + f"Date: {email.utils.format_datetime(date)}\r\n"
        + f"Message-ID: {message_id}\r\n"
        + (f"In-Reply-To: {in_reply_to}\r\n" if in_reply_to else "")
        + references_header(references)
        + f"Content-Language: {language}\r\n"
        + subject_header
    )
    return headers.encode("ascii") + body
