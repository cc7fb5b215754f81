"""The benchmark's lean relay (``notifications.lean_relay``) speaks SMTP as a relay does and
counts right: smtplib talks to it over a real socket."""

from __future__ import annotations

import smtplib
import socket

import pytest

from notifications.lean_relay import LeanRelayThread, message_id


@pytest.fixture
def relay():
    running = LeanRelayThread(keep=True)
    port = running.start()
    yield running, port
    running.stop()


def _message(number: int, body: str) -> bytes:
    return (
        f"From: breachdesk@localhost\r\nTo: a{number}@example.com\r\n"
        f"Message-ID: <m{number}@bench.example>\r\nSubject: Notice\r\n\r\n{body}"
    ).encode()


def test_counts_messages_recipients_and_message_ids_with_dot_unstuffing(relay):
    running, port = relay
    dotted = _message(1, ".starts with a dot\r\n..two dots\r\n.\r\nafter a lone dot?\r\nend\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        assert smtp.ehlo()[0] == 250
        assert smtp.has_extn("8bitmime") and smtp.has_extn("size")
        assert smtp.noop()[0] == 250
        assert smtp.sendmail("breachdesk@localhost", ["a1@example.com"], dotted) == {}
        smtp.sendmail("breachdesk@localhost", ["a2@example.com", "b2@example.com"], _message(2, "x\r\n"))
        smtp.rset()
        # The same Message-ID and recipient again: one more message, no more distinct ones.
        smtp.sendmail("breachdesk@localhost", ["a2@example.com"], _message(2, "again\r\n"))
        assert smtp.docmd("VRFY", "a1@example.com")[0] == 252
        assert smtp.docmd("FROBNICATE")[0] == 500
    counts = running.counts
    assert counts.summary()["received"] == 3
    assert counts.summary()["recipients"] == 3
    assert counts.summary()["message_ids"] == 2
    # smtplib stuffed every line starting with a dot (the lone "." too); the relay gives the
    # message back as sent.
    recipients, data = counts.kept[0]
    assert recipients == ["a1@example.com"]
    assert data == dotted
    assert counts.kept[1][0] == ["a2@example.com", "b2@example.com"]


def test_command_order_and_the_raw_conversation(relay):
    """RCPT before MAIL and DATA before RCPT are refused (503); the replies are a relay's, and a
    message whose data arrives in pieces, split inside the end marker, is one message."""
    _running, port = relay
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        reader = raw.makefile("rb")

        def say(line: bytes) -> bytes:
            raw.sendall(line)
            return reader.readline()

        assert reader.readline().startswith(b"220 ")
        assert say(b"HELO client\r\n").startswith(b"250 ")
        assert say(b"RCPT TO:<a@example.com>\r\n").startswith(b"503 ")
        assert say(b"MAIL FROM:<s@example.com> SIZE=10\r\n").startswith(b"250 ")
        assert say(b"DATA\r\n").startswith(b"503 ")
        assert say(b"RCPT TO:<a@example.com>\r\n").startswith(b"250 ")
        assert say(b"DATA\r\n").startswith(b"354 ")
        raw.sendall(b"Message-ID: <x@y>\r\n\r\nbody\r\n.")
        raw.sendall(b"\r")
        assert say(b"\n").startswith(b"250 ")
        assert say(b"QUIT\r\n").startswith(b"221 ")
        assert reader.readline() == b""  # the relay closed the connection
    assert _running.counts.summary() == {"received": 1, "recipients": 1, "message_ids": 1, "bytes": 27}


def test_message_id_read_from_the_header_block_only():
    assert message_id(b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody") == b"<a@b>"
    assert message_id(b"Subject: x\r\nmessage-id:\r\n <folded@b>\r\n\r\nbody") == b"<folded@b>"
    assert message_id(b"Subject: x\r\n\r\nMessage-ID: <in-the-body@b>\r\n") is None
