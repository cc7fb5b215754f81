"""``incidents.mail.send_envelope`` sends as ``smtplib.SMTP.sendmail`` does, over a real socket:
for every refusal a relay can give (MAIL, one RCPT, every RCPT, DATA, the end of data, 421),
with and without PIPELINING, it raises what ``sendmail`` raises, returns what it returns, and
the relay receives the same message bytes; pipelined, MAIL, RCPT and DATA arrive in one write."""

from __future__ import annotations

import smtplib
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from incidents.mail import send_envelope
from notifications.lean_relay import LeanRelayThread


@dataclass
class Script:
    """How the scripted relay answers: reply codes per command (defaults: accept)."""

    pipelining: bool
    mail: int = 250
    rcpt: dict[str, int] = field(default_factory=dict)
    data: int = 354
    end: int = 250


@dataclass
class Conversation:
    commands: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    #: The lines that arrived in the same read as the first MAIL command.
    first_read: list[str] = field(default_factory=list)


def _serve(listener: socket.socket, script: Script, conversation: Conversation) -> None:
    connection, _address = listener.accept()
    with connection:
        connection.sendall(b"220 scripted ESMTP\r\n")
        buffer = b""
        in_data = False
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return
            if not conversation.first_read and b"mail from" in chunk.lower():
                conversation.first_read = chunk.decode().split("\r\n")[:-1]
            buffer += chunk
            replies = b""
            while True:
                if in_data:
                    end = buffer.find(b"\r\n.\r\n")
                    if end < 0 and not buffer.startswith(b".\r\n"):
                        break
                    if buffer.startswith(b".\r\n"):
                        body, buffer = b"", buffer[3:]
                    else:
                        body, buffer = buffer[: end + 2], buffer[end + 5 :]
                    conversation.messages.append(body)
                    in_data = False
                    replies += f"{script.end} end of data\r\n".encode()
                    continue
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    break
                line, buffer = buffer[:line_end].decode(), buffer[line_end + 2 :]
                verb = line.split(" ", 1)[0].upper()
                conversation.commands.append(line)
                if verb == "EHLO":
                    extensions = ["SIZE 1000000", *(["PIPELINING"] if script.pipelining else [])]
                    replies += (
                        b"250-scripted\r\n"
                        + "".join(
                            f"250{'-' if index < len(extensions) - 1 else ' '}{name}\r\n"
                            for index, name in enumerate(extensions)
                        ).encode()
                    )
                elif verb == "MAIL":
                    replies += f"{script.mail} mail\r\n".encode()
                elif verb == "RCPT":
                    address = line.split("<", 1)[1].rstrip(">")
                    replies += f"{script.rcpt.get(address, 250)} rcpt\r\n".encode()
                elif verb == "DATA":
                    replies += f"{script.data} data\r\n".encode()
                    in_data = script.data == 354
                elif verb == "QUIT":
                    connection.sendall(replies + b"221 bye\r\n")
                    return
                else:  # RSET, NOOP
                    replies += b"250 ok\r\n"
            if replies:
                connection.sendall(replies)


def _run(script: Script, send) -> tuple[object, Conversation]:
    """Serve ``script`` on a fresh port, call ``send(smtp)`` once; return its result (or the
    exception it raised, as ``(type name, args)``) and what the relay saw."""
    conversation = Conversation()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        thread = threading.Thread(target=_serve, args=(listener, script, conversation), daemon=True)
        thread.start()
        smtp = smtplib.SMTP("127.0.0.1", listener.getsockname()[1], timeout=5)
        try:
            smtp.ehlo()
            try:
                result: object = send(smtp)
            except smtplib.SMTPException as error:
                result = (type(error).__name__, error.args)
            if smtp.sock is not None:
                smtp.quit()
        finally:
            smtp.close()
        thread.join(timeout=5)
    return result, conversation


MESSAGE = b"From: a@example.com\r\nSubject: x\r\n\r\n.line starting with a dot\r\n..two\r\nend"
RECIPIENTS = ["one@example.com", "two@example.com"]

SCRIPTS: dict[str, dict[str, Any]] = {
    "accepted": {},
    "mail refused": {"mail": 550},
    "mail 421": {"mail": 421},
    "one recipient refused": {"rcpt": {"two@example.com": 550}},
    "every recipient refused": {"rcpt": {"one@example.com": 550, "two@example.com": 451}},
    "recipient 421": {"rcpt": {"one@example.com": 421}},
    "data refused": {"data": 554},
    "end of data refused": {"end": 552},
    "end of data 421": {"end": 421},
}


@pytest.mark.parametrize("pipelining", [False, True], ids=["sequential", "pipelined"])
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_send_envelope_answers_as_sendmail_does(name, pipelining):
    script = dict(SCRIPTS[name])
    expected, by_sendmail = _run(
        Script(pipelining=pipelining, **script),
        lambda smtp: smtp.sendmail("sender@example.com", RECIPIENTS, MESSAGE),
    )
    got, by_envelope = _run(
        Script(pipelining=pipelining, **script),
        lambda smtp: send_envelope(smtp, "sender@example.com", RECIPIENTS, MESSAGE),
    )

    assert got == expected
    if not pipelining:
        assert by_envelope.commands == by_sendmail.commands
        assert by_envelope.messages == by_sendmail.messages  # the same bytes, dot-stuffed alike
    else:
        # Pipelined: MAIL, every RCPT and DATA in one write (whatever the replies will be); a
        # DATA the relay accepted without a valid envelope is ended at once, empty (RFC 2920).
        assert by_envelope.first_read == [
            f"mail from:<sender@example.com> size={len(MESSAGE)}",
            "rcpt to:<one@example.com>",
            "rcpt to:<two@example.com>",
            "data",
        ]
        # The same bytes, dot-stuffed alike, as sendmail sent.
        assert [message for message in by_envelope.messages if message] == by_sendmail.messages


def test_send_envelope_refuses_an_address_that_is_not_normalised():
    with pytest.raises(ValueError, match="Not a normalised envelope address"):
        _run(Script(pipelining=True), lambda smtp: send_envelope(smtp, "s@example.com", ["x\r\n@e.com"], b""))


def test_pipelined_messages_reach_the_benchmark_relay_as_sent():
    relay = LeanRelayThread(keep=True)
    port = relay.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("pipelining")
            for number in range(3):
                assert send_envelope(smtp, "s@example.com", [f"r{number}@example.com"], MESSAGE) == {}
    finally:
        relay.stop()
    assert relay.counts.summary()["received"] == 3
    assert [data for _recipients, data in relay.counts.kept] == [MESSAGE + b"\r\n"] * 3
