"""The API's JSON parser: DRF's, through the bounded loader (`gatewayportal.jsonsafe`).

DRF's own parser let a body of nested `[` raise `RecursionError` (a 500 on every JSON endpoint, for any
authenticated caller), and passed on NUL characters and unpaired surrogates that the database or the JSON answer
echoing them could not encode (more 500s). Each is a 400 `JSON parse error - <reason>` now.
"""

from __future__ import annotations

import codecs
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from gatewayportal import jsonsafe


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return jsonsafe.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
