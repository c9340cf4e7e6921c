import logging

from gatewayportal.context import current_actor


class RequestIDFilter(logging.Filter):
    """Puts the current request id on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_actor().request_id
        return True
