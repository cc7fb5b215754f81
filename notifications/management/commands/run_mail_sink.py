"""``python manage.py run_mail_sink [--port 8025] [--folder var/mail] [--refuse-domain DOMAIN ...]``:
a local SMTP server that stores every message it receives as an .eml file, so the embedded run
shows real notices. It answers 550 ("no such user") for every address at a refused domain
(default ``undeliverable.example``, which a demo contact uses), so the embedded run shows bounces
too."""

import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from notifications.mail_sink import MailSink, start_mail_sink


class Command(BaseCommand):
    help = "Run a local SMTP sink that stores every message under var/mail/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8025)
        parser.add_argument("--folder", default=str(Path(settings.VAR_DIR) / "mail"))
        parser.add_argument(
            "--refuse-domain",
            action="append",
            default=None,
            metavar="DOMAIN",
            help="Answer 550 for every address at DOMAIN (repeatable; default undeliverable.example).",
        )

    def handle(
        self, *args: Any, port: int, folder: str, refuse_domain: list[str] | None = None, **options: Any
    ) -> None:
        domains = {
            d.lower()
            for d in (refuse_domain if refuse_domain is not None else ["undeliverable.example"])
            if d
        }
        sink = MailSink(folder=Path(folder), refuse_domains=domains)
        controller = start_mail_sink(sink, port=port)
        refused = f"; refusing {', '.join(sorted(domains))}" if domains else ""
        self.stdout.write(f"SMTP sink on 127.0.0.1:{controller.port}, storing messages in {folder}{refused}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        controller.stop()
