"""The SMTP mail backend (``MAILERS["default"]["BACKEND"] = "incidents.mail.EmailBackend"``):
Django's, with addresses done right (issue 8).

Django's SMTP backend encodes a non-ASCII domain with IDNA 2003 (Python's ``"idna"`` codec),
which maps ``faß.de`` to ``fass.de``, another domain, and refuses a non-ASCII local part. This
backend puts every envelope address through ``incidents.addresses.normalise_email`` (IDNA 2008
with UTS #46) and sends a message whose envelope needs it with the SMTPUTF8 extension (RFC 6531)
when the relay offers it after EHLO; when the relay does not, it raises ``SMTPUTF8Unavailable``
(a permanent failure: the outbox records it on the row and does not retry), never a crash.

``send_raw`` does the same for the notice sender's prebuilt bytes (``notifications.sender``).
"""

from __future__ import annotations

import contextlib
import email.policy
import re
import smtplib
from typing import Any

from django.core.exceptions import ValidationError
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend

from incidents.addresses import needs_smtputf8, normalise_email


class SMTPUTF8Unavailable(smtplib.SMTPNotSupportedError):
    """The relay does not offer SMTPUTF8, which an internationalised address (a non-ASCII local
    part) needs. Permanent for this relay: retrying would give the same answer."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        super().__init__(
            "The relay does not offer SMTPUTF8, needed for the internationalised address "
            f"{', '.join(addresses)} (RFC 6531); it cannot be delivered through this relay."
        )


class AddressNotEncodable(ValueError):
    """An envelope address whose domain cannot be encoded (IDNA 2008) or that is malformed;
    the message says why. Permanent: it concerns the recipient's address."""


def envelope_address(address: str) -> str:
    """``address`` normalised for ``RCPT TO`` (``normalise_email``); raises
    ``AddressNotEncodable`` with the reason when it cannot be."""
    try:
        return normalise_email(address)
    except ValidationError as error:
        raise AddressNotEncodable(" ".join(error.messages)) from None


def require_smtputf8(connection: smtplib.SMTP, addresses: list[str]) -> list[str]:
    """The ``MAIL FROM`` options for sending to ``addresses`` over ``connection``:
    ``["SMTPUTF8"]`` when one of them needs it and the relay offers it, ``[]`` when none needs
    it. Raises ``SMTPUTF8Unavailable`` when one needs it and the relay (after EHLO) does not
    offer it."""
    international = [address for address in addresses if needs_smtputf8(address)]
    if not international:
        return []
    connection.ehlo_or_helo_if_needed()
    if not connection.has_extn("smtputf8"):
        raise SMTPUTF8Unavailable(international)
    return ["SMTPUTF8"]


def send_raw(connection: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> dict[str, Any]:
    """``connection.sendmail`` of prebuilt ``data`` with the envelope addresses normalised and
    SMTPUTF8 asked for where needed; returns the refused recipients as ``sendmail`` does.
    Raises ``AddressNotEncodable``, ``SMTPUTF8Unavailable`` and ``smtplib`` errors.

    An all-ASCII envelope goes through ``send_envelope`` (the same commands, replies and
    exceptions as ``sendmail``, pipelined where the relay offers it); one that needs SMTPUTF8
    through ``sendmail`` itself."""
    envelope = [envelope_address(address) for address in recipients]
    options = require_smtputf8(connection, [sender, *envelope])
    if options:
        return connection.sendmail(sender, envelope, data, mail_options=options)
    return send_envelope(connection, sender, envelope, data)


_LINE_STARTING_WITH_A_DOT = re.compile(rb"(?m)^\.")


def _ending(connection: smtplib.SMTP, code: int) -> None:
    """What ``sendmail`` does after a refusal: drop the connection on 421, else ``RSET``."""
    if code == 421:
        connection.close()
        return
    # As smtplib's own _rset: a relay gone by now changes nothing about the refusal raised.
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        connection.rset()


def send_envelope(
    connection: smtplib.SMTP, sender: str, recipients: list[str], data: bytes
) -> dict[str, tuple[int, bytes]]:
    """``connection.sendmail(sender, recipients, data)`` for envelope addresses already
    normalised to ASCII (``envelope_address``): the same commands (``SIZE`` where offered),
    replies, return value (the refused recipients) and exceptions (``SMTPSenderRefused``,
    ``SMTPRecipientsRefused``, ``SMTPDataError``, the connection closed on 421), without
    parsing each address again (``smtplib.quoteaddr`` runs ``email.utils.parseaddr``: a fifth
    of a notice's send, ``bench/fanout.py``).

    Where the relay offers PIPELINING (RFC 2920; Postfix, Exim and others do), ``MAIL``, every
    ``RCPT`` and ``DATA`` go in one write and their replies are read in order: two round trips
    per message instead of four. If the relay answers ``DATA`` with 354 although ``MAIL`` or
    every ``RCPT`` was refused, the empty message is ended with "." and discarded (RFC 2920
    section 3.1), then the refusal is raised as ``sendmail`` raises it.
    Raises ``ValueError`` for an address that is not ASCII or carries a line break."""
    for address in (sender, *recipients):
        if not address.isascii() or "\r" in address or "\n" in address or ">" in address:
            raise ValueError(f"Not a normalised envelope address: {address!r}")
    connection.ehlo_or_helo_if_needed()
    size = f" size={len(data)}" if connection.does_esmtp and connection.has_extn("size") else ""
    # Spelled as smtplib spells them.
    commands = [f"mail from:<{sender}>{size}", *(f"rcpt to:<{address}>" for address in recipients)]
    pipelined = connection.does_esmtp and connection.has_extn("pipelining")
    if pipelined:
        connection.send("".join(f"{command}\r\n" for command in commands) + "data\r\n")
        replies = [connection.getreply() for _command in commands]
    else:
        replies = []
        for command in commands:
            replies.append(connection.docmd(command))
            if (len(replies) == 1 and replies[0][0] != 250) or replies[-1][0] == 421:
                break  # as sendmail: no RCPT after a refused MAIL, nothing after a 421
    mail_code, mail_reply = replies[0]
    refused: dict[str, tuple[int, bytes]] = {}
    for address, (code, reply) in zip(recipients, replies[1:], strict=False):
        if code not in (250, 251):
            refused[address] = (code, reply)
    data_code, data_reply = connection.getreply() if pipelined else (0, b"")
    if pipelined and data_code == 354 and (mail_code != 250 or len(refused) == len(recipients)):
        connection.send(b".\r\n")  # DATA accepted without a valid envelope: end and discard
        connection.getreply()
    if mail_code != 250:
        _ending(connection, mail_code)
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
    for code, _reply in refused.values():
        if code == 421:
            connection.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        _ending(connection, 0)
        raise smtplib.SMTPRecipientsRefused(refused)
    if not pipelined:
        data_code, data_reply = connection.docmd("data")
    if data_code != 354:
        raise smtplib.SMTPDataError(data_code, data_reply)  # as smtplib.SMTP.data raises it
    message = _LINE_STARTING_WITH_A_DOT.sub(b"..", data)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    connection.send(message + b".\r\n")
    code, reply = connection.getreply()
    if code != 250:
        _ending(connection, code)
        raise smtplib.SMTPDataError(code, reply)
    return refused


class EmailBackend(DjangoSMTPBackend):
    """Django's SMTP backend with IDNA 2008 envelope addresses and SMTPUTF8 where needed (see
    the module docstring). The bytes handed to the relay are kept on the message as
    ``sent_bytes`` (the evidence of what was sent)."""

    def _send(self, email_message: Any) -> bool:
        if not email_message.recipients():
            return False
        assert self.connection is not None  # send_messages opened it
        try:
            from_email = envelope_address(self.prep_address(email_message.from_email, force_ascii=False))
            recipients = [
                envelope_address(self.prep_address(address, force_ascii=False))
                for address in email_message.recipients()
            ]
        except ValueError as error:
            if isinstance(error, AddressNotEncodable):
                raise
            raise AddressNotEncodable(str(error)) from None
        options = require_smtputf8(self.connection, [from_email, *recipients])
        policy = email.policy.SMTPUTF8 if options else email.policy.SMTP
        data = email_message.message(policy=policy).as_bytes()
        try:
            self.connection.sendmail(from_email, recipients, data, mail_options=options)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        email_message.sent_bytes = data
        return True
