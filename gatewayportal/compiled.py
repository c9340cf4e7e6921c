"""Reads compiled once: the ORM writes a query's SQL the first time it runs; later runs send that SQL with their
own values, and the ORM's converters read the rows as the queryset would.

For the one or two reads of every API request (the token check, the list's versions), where building and
compiling the queryset took several times the database's answer. The queryset stays the one definition of the
read; only the values named as parameters change between runs, so they must be plain scalars, each compiled to one
SQL parameter as it is (no lists: an IN's length is compiled in).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import QuerySet

_KINDS: dict[type, Callable[[int], Any]] = {
    str: lambda n: f"compiled-parameter-{n}-{secrets.token_hex(8)}",
    int: lambda n: -(2**62) - n,
}


class Statement:
    """A `values_list` queryset's SQL, compiled when made and sent by `rows`, which reads the rows as evaluating the
    queryset would (the ORM's converters). The one place that splits a queryset's evaluation into those two steps."""

    def __init__(self, queryset: QuerySet, using: str | None = None) -> None:
        self.using = using or queryset.db
        self.compiler = queryset.query.get_compiler(using=self.using)
        self.sql, self.params = self.compiler.as_sql()

    def rows(self, params: tuple | None = None) -> list[tuple]:
        """The rows, with the compiled parameters or `params` in their place."""
        with connections[self.using].cursor() as cursor:
            cursor.execute(self.sql, self.params if params is None else params)
            fetched = cursor.fetchall()
        return list(self.compiler.results_iter(results=[fetched], tuple_expected=True))


class CompiledRead:
    """`build(**parameters)` returns a `values_list` queryset; `rows(**values)` runs it with these values."""

    def __init__(self, build: Callable[..., QuerySet], **parameters: type) -> None:
        self.build = build
        self.parameters = parameters
        self._compiled: dict[str, tuple[Statement, list[str | None]]] = {}

    def rows(self, using: str = "default", **values: Any) -> list[tuple]:
        statement, slots = self._compiled.get(using) or self._compile(using)
        params = tuple(
            param if slot is None else values[slot] for param, slot in zip(statement.params, slots, strict=True)
        )
        return statement.rows(params)

    def _compile(self, using: str) -> tuple[Statement, list[str | None]]:
        markers = {name: _KINDS[kind](n) for n, (name, kind) in enumerate(self.parameters.items())}
        statement = Statement(self.build(**markers), using)
        named = {marker: name for name, marker in markers.items()}
        slots = [named.get(param) if isinstance(param, str | int) else None for param in statement.params]
        if sorted(filter(None, slots)) != sorted(self.parameters):
            raise ValueError(f"each parameter must be one SQL parameter as it is: {sorted(self.parameters)}")
        self._compiled[using] = compiled = (statement, slots)
        return compiled
