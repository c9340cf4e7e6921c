"""Secrets never reach an audit event, a log line or an export."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {
        "key",
        "private_key",
        "token",
        "kubeconfig",
        "secret",
        "password",
        "tls.key",
        "client-key-data",
        "authorization",
        "api_key",
        "webhook-signature",
        "x-hub-signature",
        "client_secret",
        "webhook_secret",
    }
)
# Not "_secret": `tls_secret` is the public certificate plus a `key` that is redacted on its own.
SECRET_KEY_SUFFIXES = ("_token", "_password", "_private_key", "-token")
# Whole PEM private-key blocks, bearer credentials and Standard Webhooks secrets inside free text.
_SECRET_TEXT = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|whsec_[A-Za-z0-9+/=]+",
    re.DOTALL,
)


def is_secret_key(key: Any) -> bool:
    name = str(key).lower()
    return name in SECRET_KEYS or name.endswith(SECRET_KEY_SUFFIXES)


def redact_text(value: str) -> str:
    value = _SECRET_TEXT.sub(REDACTED, value)
    # Whatever the pattern missed (a mangled PEM block): drop the whole text rather than leak part of a key.
    return REDACTED if "PRIVATE KEY" in value else value


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(k) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
