"""A local SMTP server (aiosmtpd) that keeps what it receives: the embedded run's mail sink
(``manage.py run_mail_sink``, messages under ``var/mail/``) and the tests' real SMTP peer.

Refusal rules let tests make the relay answer 451 (try again later) for a while, or 550 for one
address, over a real SMTP conversation.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class ReceivedMessage:
    """One message as the relay accepted it: envelope recipients, the parsed message and the
    bytes as received (``raw``)."""

    recipients: list[str]
    message: EmailMessage
    raw: bytes = b""

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def text(self) -> str:
        return self._body("plain")

    def html(self) -> str:
        return self._body("html")

    def _body(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None:
            raise LookupError(f"The message has no text/{subtype} part.")
        return part.get_content()


@dataclass
class MailSink:
    """The aiosmtpd handler. ``refuse_permanently``: addresses answered 550;
    ``refuse_domains``: every address at these domains is answered 550 too;
    ``refuse_temporarily``: while True, every recipient is answered 451. With ``folder``, each
    message is also written there as ``<n>.eml``. ``delay_seconds``: how long the relay takes to
    answer after it has kept a message (a slow relay; a sender killed while waiting leaves a
    message the relay kept but the sender never recorded as sent)."""

    folder: Path | None = None
    refuse_permanently: set[str] = field(default_factory=set)
    refuse_domains: set[str] = field(default_factory=set)
    refuse_temporarily: bool = False
    received: list[ReceivedMessage] = field(default_factory=list)
    refusals: int = 0
    delay_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.refuse_temporarily:
            self.refusals += 1
            return "451 4.3.0 Try again later"
        if (
            address.lower() in self.refuse_permanently
            or address.lower().rpartition("@")[2] in self.refuse_domains
        ):
            self.refusals += 1
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.content
        assert isinstance(content, bytes)  # the server runs with decode_data off: raw bytes
        message = email.message_from_bytes(content, policy=email.policy.default)
        with self._lock:
            self.received.append(
                ReceivedMessage(list(envelope.rcpt_tos), message, envelope.original_content or b"")
            )
            count = len(self.received)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{count:06d}.eml").write_bytes(content)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mail_sink(sink: MailSink, *, port: int | None = None, smtputf8: bool = False) -> Controller:
    """Start an SMTP server for ``sink`` on 127.0.0.1 (``port`` or a free one) in a thread;
    returns the aiosmtpd ``Controller`` (``.port``; ``.stop()`` to end it). ``smtputf8``: the
    server offers the SMTPUTF8 extension (RFC 6531) in its EHLO answer."""
    controller = Controller(
        sink, hostname="127.0.0.1", port=port or free_port(), ready_timeout=10, enable_SMTPUTF8=smtputf8
    )
    controller.start()
    return controller
