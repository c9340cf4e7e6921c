"""The one JSON loader for untrusted bodies: strict JSON, bounded, and only strings the portal can store.

Refused with a `JSONLimitError` (a `ValueError`) naming the reason: `NaN` / `Infinity` (not JSON; Postgres'
jsonb refuses them), nesting deeper than `untrusted.MAX_DEPTH` (Python's decoder raised `RecursionError` on a
body of a few thousand `[`, a 500), NUL characters and unpaired surrogates (`gatewayportal.untrusted`).

Pure: imports nothing of the portal but `gatewayportal.untrusted`.
"""

from __future__ import annotations

import json
from typing import Any

from gatewayportal import untrusted


class JSONLimitError(ValueError):
    """The body is not JSON the portal accepts; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not a JSON value.")


def loads(data: bytes | str) -> Any:
    """Parse `data` like `json.loads`, within the limits above."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise JSONLimitError(f"Documents nested deeper than {untrusted.MAX_DEPTH} levels are not accepted.") from None
    except JSONLimitError:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise JSONLimitError(str(exc)) from exc
    found = untrusted.problem(value)
    if found:
        raise JSONLimitError(found)
    return value
