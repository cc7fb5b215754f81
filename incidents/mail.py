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

import email.policy
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
    Raises ``AddressNotEncodable``, ``SMTPUTF8Unavailable`` and ``smtplib`` errors."""
    envelope = [envelope_address(address) for address in recipients]
    options = require_smtputf8(connection, [sender, *envelope])
    return connection.sendmail(sender, envelope, data, mail_options=options)


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
