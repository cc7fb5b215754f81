"""``python manage.py run_mail_sink [--port 8025] [--folder var/mail]``: a local SMTP server that
stores every message it receives as an .eml file, so the embedded run shows real notices."""

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

    def handle(self, *args: Any, port: int, folder: str, **options: Any) -> None:
        sink = MailSink(folder=Path(folder))
        controller = start_mail_sink(sink, port=port)
        self.stdout.write(f"SMTP sink on 127.0.0.1:{controller.port}, storing messages in {folder}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        controller.stop()
