"""What every loader of untrusted documents checks after parsing: strings the database can store and answers can
encode, and nesting that the code walking a document afterwards can follow.

Postgres refuses NUL in text and in jsonb (`\\u0000`), and a lone surrogate (`\\ud800`) cannot be encoded as UTF-8,
neither for the database nor for a JSON answer that echoes it in an error: either was a 500 wherever a string of a
request reached a query, a stored row or a refusal naming it. Refused at the door instead, with a 400.

Pure: imports nothing of the portal.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 64
NUL = "\x00"


def problem(value: Any, *, max_depth: int | None = MAX_DEPTH) -> str | None:
    """What makes `value` (parsed JSON or YAML) unacceptable, or None. Walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            found = _string_problem(item)
            if found:
                return found
            continue
        if not isinstance(item, dict | list | tuple):
            continue
        if max_depth is not None and depth > max_depth:
            return f"Documents nested deeper than {max_depth} levels are not accepted."
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)
    return None


def _string_problem(text: str) -> str | None:
    if NUL in text:
        return "Text may not contain NUL characters (\\u0000)."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Text may not contain unpaired surrogates (\\ud800-\\udfff)."
    return None
