import logging

from gatewayportal.context import current_actor
from gatewayportal.redaction import REDACTED, SECRET_KEYS, redact

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RequestIDFilter(logging.Filter):
    """Puts the current request id on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # Django logs 4xx/5xx responses after the middleware has left the request's context.
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", "") or current_actor().request_id
        return True


class RedactSecretsFilter(logging.Filter):
    """Keeps tokens, keys and passwords out of log lines, whether passed as arguments or as `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in list(vars(record).items()):
            if name in _RECORD_ATTRIBUTES:
                continue
            secret = name.lower() in SECRET_KEYS and value not in (None, "")
            setattr(record, name, REDACTED if secret else redact(value))
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = redact(record.args)
        if "PRIVATE KEY-----" in record.getMessage():
            record.msg, record.args = REDACTED, None
        return True
