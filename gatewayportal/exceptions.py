"""The domain's one error type: plain Python, so pure rules can raise it (the API's 400 is in exception_handler)."""

from __future__ import annotations


class DomainError(Exception):
    """A refusal by a domain rule; `errors` is the API's nested `{"field": ["message"]}` shape."""

    status = 400

    def __init__(self, errors: dict | list | str):
        self.errors = errors if isinstance(errors, dict) else {"non_field_errors": _as_list(errors)}
        super().__init__(str(self.errors))


class PreconditionFailed(DomainError):
    """The object changed since the caller read it (`If-Match` names another version): HTTP 412."""

    status = 412


def _as_list(value):
    return value if isinstance(value, list) else [value]
