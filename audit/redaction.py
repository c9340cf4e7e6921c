"""Secrets never reach an audit event, a log line or an export."""

from __future__ import annotations

from typing import Any

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {"key", "private_key", "token", "kubeconfig", "secret", "password", "tls.key", "client-key-data"}
)


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if str(k).lower() in SECRET_KEYS and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and "PRIVATE KEY-----" in value:
        return REDACTED
    return value
