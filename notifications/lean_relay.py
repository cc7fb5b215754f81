"""A lean SMTP relay that only counts: the fan-out benchmark's stand-in for an MTA on another host.

``notifications.mail_sink`` (aiosmtpd) parses and keeps every message, about 4 ms of CPU a
message on the benchmark machine, and in the benchmark it shares the machine's cores with the
sender it measures. A production relay is an MTA on another host whose work the sender never
pays for. This relay speaks the same SMTP (RFC 5321) with far less work per message: an
``asyncio.Protocol`` that reads lines, answers as a relay does and, for each accepted message,
counts it, its envelope recipients and its ``Message-ID`` (read from the header block's bytes,
no MIME parsing). Nothing is stored but those counts (and the messages themselves with
``keep=True``, for tests).

The conversation (RFC 5321 section 4): ``220`` greeting; ``EHLO`` (``250`` with ``SIZE``,
``8BITMIME``, ``PIPELINING``, ``HELP``, and ``SMTPUTF8`` if asked for) or ``HELO``; ``MAIL FROM``
(parameters accepted); ``RCPT TO`` (``503`` before ``MAIL``); ``DATA`` (``354``, ``503``
without a recipient), the message up to the line holding a single ``.``, each other line's
leading dot removed (dot-unstuffing, section 4.5.2), then ``250``; ``RSET`` and ``NOOP``
(``250``); ``QUIT`` (``221`` and the connection closed); ``VRFY`` (``252``); anything else
``500``. Commands may be pipelined (RFC 2920).

Run as its own process (``python -m notifications.lean_relay --port N``): it prints ``ready``
once listening and, on SIGTERM, one JSON line ``{"received", "recipients", "message_ids",
"bytes", "cpu"}`` (messages, distinct recipients, distinct Message-IDs, message bytes after
unstuffing, the process's CPU seconds since it was ready), the keys ``bench/fanout.py`` reads from either relay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
import time
from dataclasses import dataclass, field

#: The line that ends a message's data, with the CRLF before it (RFC 5321 section 4.1.1.4).
_END_OF_DATA = b"\r\n.\r\n"
_MAX_LINE = 4096  # a command line longer than this is refused (RFC 5321 4.5.3.1.4 says 512)


@dataclass
class RelayCounts:
    """What the relay accepted: ``messages``, the distinct envelope ``recipients`` and
    ``message_ids`` (bytes as received, the ``Message-ID`` header's value without folding
    whitespace), ``size``: bytes of message data after unstuffing; with ``keep``, each message as
    ``(recipients, data)`` in ``kept``."""

    messages: int = 0
    recipients: set[bytes] = field(default_factory=set)
    message_ids: set[bytes] = field(default_factory=set)
    size: int = 0
    keep: bool = False
    kept: list[tuple[list[str], bytes]] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """``{"received", "recipients", "message_ids", "bytes"}`` as counts."""
        return {
            "received": self.messages,
            "recipients": len(self.recipients),
            "message_ids": len(self.message_ids),
            "bytes": self.size,
        }


def message_id(data: bytes) -> bytes | None:
    """The ``Message-ID`` header's value in ``data`` (a message's bytes), unfolded and stripped,
    read from the header block (up to the first empty line) without parsing MIME; ``None``
    without one."""
    end = data.find(b"\r\n\r\n")
    header = data if end < 0 else data[: end + 2]
    lower = header.lower()
    if lower.startswith(b"message-id:"):
        start = len(b"message-id:")
    else:
        found = lower.find(b"\r\nmessage-id:")
        if found < 0:
            return None
        start = found + len(b"\r\nmessage-id:")
    value = bytearray()
    while True:
        line_end = header.find(b"\r\n", start)
        if line_end < 0:
            line_end = len(header)
        value += header[start:line_end]
        start = line_end + 2
        if start >= len(header) or header[start : start + 1] not in (b" ", b"\t"):
            break  # the next line is not a continuation (RFC 5322 section 2.2.3)
    return bytes(value).strip()


class _Session(asyncio.Protocol):
    """One SMTP connection: commands line by line, then the message data in DATA state."""

    def __init__(self, counts: RelayCounts, hostname: str, smtputf8: bool):
        self.counts = counts
        self.hostname = hostname.encode("ascii")
        self.smtputf8 = smtputf8
        self.buffer = bytearray()
        self.in_data = False
        self.searched = 0  # where the next search for the end of data starts
        self.mail_from = False
        self.rcpt: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 " + self.hostname + b" ESMTP lean relay\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = bytearray()
        while self.transport is not None:
            if self.in_data:
                end = self.buffer.find(_END_OF_DATA, self.searched)
                if end < 0:
                    self.searched = max(0, len(self.buffer) - len(_END_OF_DATA) + 1)
                    break
                # The buffer starts with the CRLF put before the data, so every line, the first
                # included, follows a CRLF: one replace removes each line's leading dot.
                message = bytes(self.buffer[:end]).replace(b"\r\n.", b"\r\n")[2:]
                if message:
                    message += b"\r\n"  # the last line's CRLF, which belongs to the message
                del self.buffer[: end + len(_END_OF_DATA)]
                self.in_data = False
                self._accept(message)
                replies += b"250 2.0.0 OK: queued\r\n"
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_LINE:
                    replies += b"500 5.5.2 Line too long\r\n"
                    self.buffer.clear()
                break
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            reply, close = self._command(line)
            replies += reply
            if close:
                assert self.transport is not None
                self.transport.write(bytes(replies))
                self.transport.close()
                self.transport = None
                return
        if replies and self.transport is not None:
            self.transport.write(bytes(replies))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _reset(self) -> None:
        self.mail_from = False
        self.rcpt = []

    def _command(self, line: bytes) -> tuple[bytes, bool]:
        verb, _, argument = line.partition(b" ")
        verb = verb.upper()
        if verb == b"EHLO":
            self._reset()
            return (
                b"250-"
                + self.hostname
                + b"\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
                + (b"250-SMTPUTF8\r\n" if self.smtputf8 else b"")
                + b"250 HELP\r\n",
                False,
            )
        if verb == b"HELO":
            self._reset()
            return b"250 " + self.hostname + b"\r\n", False
        if verb == b"MAIL":
            if not argument.upper().startswith(b"FROM:"):
                return b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n", False
            if self.mail_from:
                return b"503 5.5.1 Error: nested MAIL command\r\n", False
            self.mail_from = True
            return b"250 2.1.0 OK\r\n", False
        if verb == b"RCPT":
            if not self.mail_from:
                return b"503 5.5.1 Error: need MAIL command\r\n", False
            if not argument.upper().startswith(b"TO:"):
                return b"501 5.5.4 Syntax: RCPT TO:<address>\r\n", False
            address = argument[3:].strip().split(b" ", 1)[0].strip(b"<>")
            self.rcpt.append(address)
            return b"250 2.1.5 OK\r\n", False
        if verb == b"DATA":
            if not self.rcpt:
                return b"503 5.5.1 Error: need RCPT command\r\n", False
            self.in_data = True
            self.buffer[:0] = b"\r\n"
            self.searched = 0
            return b"354 End data with <CR><LF>.<CR><LF>\r\n", False
        if verb == b"RSET":
            self._reset()
            return b"250 2.0.0 OK\r\n", False
        if verb == b"NOOP":
            return b"250 2.0.0 OK\r\n", False
        if verb == b"QUIT":
            return b"221 2.0.0 Bye\r\n", True
        if verb == b"VRFY":
            return b"252 2.0.0 Cannot VRFY user, but will accept message\r\n", False
        return b"500 5.5.2 Error: command not recognized\r\n", False

    def _accept(self, message: bytes) -> None:
        counts = self.counts
        counts.messages += 1
        counts.size += len(message)
        counts.recipients.update(self.rcpt)
        found = message_id(message)
        if found is not None:
            counts.message_ids.add(found)
        if counts.keep:
            counts.kept.append(([address.decode() for address in self.rcpt], message))
        self._reset()


async def start_lean_relay(
    counts: RelayCounts, *, host: str = "127.0.0.1", port: int = 0, smtputf8: bool = False
) -> asyncio.Server:
    """Listen on ``host``:``port`` (0: a free one; read it from the server's sockets) in the
    running event loop, counting into ``counts``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Session(counts, host, smtputf8), host, port)


class LeanRelayThread:
    """The relay in a thread of this process (tests): ``start()`` returns the port,
    ``stop()`` ends it; ``counts`` is read once stopped (or while idle)."""

    def __init__(self, *, keep: bool = False, smtputf8: bool = False):
        self.counts = RelayCounts(keep=keep)
        self.smtputf8 = smtputf8
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def start(self) -> int:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            start_lean_relay(self.counts, smtputf8=self.smtputf8), self.loop
        ).result(timeout=10)
        return self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        server = self.server
        if server is not None:

            async def close() -> None:
                server.close()
                await server.wait_closed()

            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def main() -> None:
    """The relay as its own process: ``ready`` once listening, the counts as JSON on SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    async def serve() -> None:
        counts = RelayCounts()
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        server = await start_lean_relay(counts, host=args.host, port=args.port)
        print("ready", flush=True)  # noqa: T201 - the parent process reads it
        ready_cpu = time.process_time()
        await stopped.wait()
        server.close()
        cpu = time.process_time() - ready_cpu
        print(json.dumps({**counts.summary(), "cpu": cpu}), flush=True)  # noqa: T201

    asyncio.run(serve())


if __name__ == "__main__":
    main()
