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


class CompiledRead:
    """`build(**parameters)` returns a `values_list` queryset; `rows(**values)` runs it with these values."""

    def __init__(self, build: Callable[..., QuerySet], **parameters: type) -> None:
        self.build = build
        self.parameters = parameters
        self._compiled: dict[str, tuple[Any, str, tuple, list[str | None]]] = {}

    def rows(self, using: str = "default", **values: Any) -> list[tuple]:
        compiler, sql, params, slots = self._compiled.get(using) or self._compile(using)
        params = tuple(param if slot is None else values[slot] for param, slot in zip(params, slots, strict=True))
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        return list(compiler.results_iter(results=[fetched], tuple_expected=True))

    def _compile(self, using: str):
        markers = {name: _KINDS[kind](n) for n, (name, kind) in enumerate(self.parameters.items())}
        compiler = self.build(**markers).query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        named = {marker: name for name, marker in markers.items()}
        slots = [named.get(param) if isinstance(param, str | int) else None for param in params]
        if sorted(filter(None, slots)) != sorted(self.parameters):
            raise ValueError(f"each parameter must be one SQL parameter as it is: {sorted(self.parameters)}")
        self._compiled[using] = compiled = (compiler, sql, tuple(params), slots)
        return compiled
