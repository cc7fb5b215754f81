"""Request parsers: form-encoded bodies must be valid UTF-8, raw or percent-encoded (400
otherwise), instead of being stored with replacement characters."""

from __future__ import annotations

from io import BytesIO
from urllib.parse import parse_qsl

from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser


def require_utf8_form(raw: bytes) -> None:
    """Raise ``UnicodeDecodeError`` unless ``raw`` (an urlencoded body) is UTF-8 throughout."""
    parse_qsl(raw.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")


class StrictFormParser(FormParser):
    """``application/x-www-form-urlencoded`` that refuses bytes that are not UTF-8."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            require_utf8_form(raw)
        except UnicodeDecodeError:
            raise ParseError("The form body is not valid UTF-8.") from None
        return super().parse(BytesIO(raw), media_type, parser_context)
