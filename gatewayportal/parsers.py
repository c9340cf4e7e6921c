"""The API's body parsing: DRF's JSON parser through the bounded loader (`gatewayportal.jsonsafe`), and the one
way a body is decoded to text.

DRF's own parser let a body of nested `[` raise `RecursionError` (a 500 on every JSON endpoint, for any
authenticated caller), and passed on NUL characters and unpaired surrogates that the database or the JSON answer
echoing them could not encode (more 500s). A declared charset that Python knows but is no text encoding
(`charset=rot13`, `base64`, `zlib`) failed the decoding with a `LookupError` or a `TypeError` (500s, on the
JSON endpoints and the YAML import); with a query string in the URL it failed even earlier, inside Django,
while the request was built (`gatewayportal.wsgi.refuse_non_text_charsets`). Each is a 400 now.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from gatewayportal import jsonsafe


def body_text(stream, parser_context: dict | None, what: str) -> str:
    """The request body decoded with its declared charset (default UTF-8); a 400 when it cannot be."""
    encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
    data = stream.read()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseError(f"The {what} body is not valid {encoding} text.") from exc
    except LookupError as exc:  # a codec that is no text encoding (rot13, base64, zlib …)
        raise ParseError(f"The {what} body's charset {encoding!r} is not a text encoding.") from exc


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        text = body_text(stream, parser_context, "JSON")
        try:
            return jsonsafe.loads(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
