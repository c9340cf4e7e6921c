"""The WSGI application gunicorn serves: Django's, behind one guard that must run before Django sees a request."""

import codecs
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application
from django.utils.http import parse_header_parameters


def is_text_encoding(name: str) -> bool:
    """False for a codec Python knows that does not decode bytes to text (rot13, base64, zlib …)."""
    try:
        b"a".decode(name)
    except UnicodeDecodeError:
        return True
    except LookupError:
        return False
    return True


def refuse_non_text_charsets(application: Callable) -> Callable:
    """A request whose declared charset is a codec Python knows but no text encoding (`charset=rot13`) answers 400
    before Django builds the request: Django takes any charset `codecs.lookup` knows and decodes the query string
    with it, a `LookupError` raised where no middleware sees it (a 500, unauthenticated). Charsets Python does not
    know go on to Django, which ignores them."""

    def guarded(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        _, params = parse_header_parameters(environ.get("CONTENT_TYPE") or "")
        charset = params.get("charset", "")
        try:
            known = bool(charset) and codecs.lookup(charset) is not None
        except LookupError:
            known = False
        if known and not is_text_encoding(charset):
            body = json.dumps({"detail": f"The charset {charset!r} is not a text encoding."}).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("400 Bad Request", headers)
            return [body]
        return application(environ, start_response)

    return guarded


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatewayportal.settings")
application = refuse_non_text_charsets(get_wsgi_application())
