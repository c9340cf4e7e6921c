"""The one YAML loader for untrusted text: PyYAML's safe loader, bounded.

Refused, with a `yaml.YAMLError` naming the limit (so callers keep their `except yaml.YAMLError`):
- anchors and aliases (`&a` / `*a`): an alias bomb of a few hundred bytes expands to 10^9 nodes;
- more than `MAX_DOCUMENTS` documents, nesting deeper than `MAX_DEPTH`, text longer than `MAX_CHARS`;
- strings holding NUL (`"\\0"`) or an unpaired surrogate (`"\\ud800"`): the database cannot store them, nor a
  JSON answer echo them (`gatewayportal.untrusted`).

Pure: imports nothing of the portal but `gatewayportal.untrusted`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.events import AliasEvent

from gatewayportal import untrusted

MAX_CHARS = 1024 * 1024
MAX_DOCUMENTS = 100
MAX_DEPTH = 32


class YAMLLimitError(yaml.YAMLError):
    """The text is beyond what the portal parses; the message says which limit and what is accepted."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses anchors, aliases and deep nesting before building anything."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise YAMLLimitError(
                f"YAML anchors and aliases (&name / *name) are not accepted (line {event.start_mark.line + 1}); "
                "write the values out."
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLLimitError(f"YAML nesting deeper than {MAX_DEPTH} levels is not accepted.")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_size(text: str) -> None:
    if len(text) > MAX_CHARS:
        raise YAMLLimitError(f"YAML text longer than {MAX_CHARS} characters is not accepted.")


def _checked(document: Any) -> Any:
    found = untrusted.problem(document, max_depth=None)  # the composer already bounds the depth
    if found:
        raise YAMLLimitError(f"YAML: {found}")
    return document


def load_all(text: str) -> Iterator[Any]:
    """Every document of `text`, like `yaml.safe_load_all`, within the limits above."""
    _check_size(text)
    loader = _BoundedLoader(text)
    try:
        count = 0
        while loader.check_data():
            count += 1
            if count > MAX_DOCUMENTS:
                raise YAMLLimitError(f"More than {MAX_DOCUMENTS} YAML documents are not accepted.")
            yield _checked(loader.get_data())
    finally:
        loader.dispose()


def load(text: str) -> Any:
    """The single document of `text`, like `yaml.safe_load`, within the limits above."""
    _check_size(text)
    loader = _BoundedLoader(text)
    try:
        return _checked(loader.get_single_data())
    finally:
        loader.dispose()
