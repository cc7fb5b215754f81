"""``python manage.py run_webhook_receiver [--port 8026] [--folder var/webhooks] [--secret-file F]``:
a local HTTP receiver for the embedded run's webhooks. It stores every request it receives as
a JSON file (headers, body, and whether ``Breachdesk-Signature`` verifies with the secret in
``--secret-file``, default ``var/demo-webhook-secret``, written by ``seed_demo_webhooks``) and
answers 204. Listens on 127.0.0.1 only; for demos and development, never production."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


def signature_verifies(secret: str, header: str, body: bytes, *, tolerance: int = 300) -> bool:
    """Whether ``header`` (``t=<unix seconds>,v1=<hex>[,v1=<hex>]``) signs ``body`` with
    ``secret`` within ``tolerance`` seconds of now (README "Webhooks")."""
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in parts if key == "t"]
    if not secret or not stamps or not stamps[0].isdigit() or abs(time.time() - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{stamps[0]}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in parts if key == "v1")


class Command(BaseCommand):
    help = "Run a local webhook receiver that stores every request under var/webhooks/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8026)
        parser.add_argument("--folder", default=str(Path(settings.VAR_DIR) / "webhooks"))
        parser.add_argument("--secret-file", default=str(Path(settings.VAR_DIR) / "demo-webhook-secret"))

    def handle(self, *args: Any, port: int, folder: str, secret_file: str, **options: Any) -> None:
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        secret_path = Path(secret_file)
        counter = iter(range(1, 10**9))
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1_000_000))
                secret = secret_path.read_text().strip() if secret_path.exists() else ""
                valid = signature_verifies(secret, self.headers.get("Breachdesk-Signature", ""), body)
                event = "".join(
                    c for c in self.headers.get("Breachdesk-Event", "unknown") if c.isalnum() or c in "._"
                )
                with lock:
                    number = next(counter)
                record = {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "signature_valid": valid,
                    "body": body.decode("utf-8", "replace"),
                }
                name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{number:05d}-{event}.json"
                (target / name).write_text(json.dumps(record, indent=2))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.stdout.write(
            f"Webhook receiver on http://127.0.0.1:{server.server_address[1]}/, storing requests in {folder}"
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        server.shutdown()
        server.server_close()
