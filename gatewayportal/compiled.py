"""Reads compiled once: the ORM writes a query's SQL the first time it runs; later runs send that SQL with their
own values, and the ORM's converters read the rows as the queryset would.

For the reads of every API request (the token check, the list's versions) and of every create (its conflict and
name check), where building and compiling the queryset took several times the database's answer. The queryset
stays the one definition of the read; only the values named as parameters change between runs, so they must be
plain scalars (text, integers, UUIDs), each compiled to one SQL parameter as it is or as a `startswith` pattern
(no lists: an IN's length is compiled in, so a read of a list compiles once per length, a parameter per item).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.transaction import TransactionManagementError

# A value no real one is, for each parameter, of its type. Integers stay within every integer column's range: Django
# compiles a look-up by an out-of-range value as "no rows", leaving no parameter to fill.
_KINDS: dict[type, Callable[[int], Any]] = {
    str: lambda n: f"compiled-parameter-{n}-{secrets.token_hex(8)}",
    int: lambda n: 2_147_000_000 + n,
    uuid.UUID: lambda n: uuid.UUID(int=secrets.randbits(128)),
}
# How a run's value fills a slot: as it is, as the pattern of a `startswith` look-up (escaped as Django does), or
# as the hex digits Django sends for a UUID where the database has no UUID type (SQLite).
AS_IS, PREFIX, HEX = "as is", "prefix", "hex"
_FILL: dict[str, Callable[[Any, Callable[[str], str]], Any]] = {
    AS_IS: lambda value, like: value,
    PREFIX: lambda value, like: f"{like(value)}%",
    HEX: lambda value, like: uuid.UUID(str(value)).hex,
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
        connection = connections[self.using]
        locking = self.compiler.query.select_for_update and connection.features.has_select_for_update
        if locking and connection.get_autocommit():
            # Django refuses this when it compiles; a statement compiled once must refuse it on every run.
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with connection.cursor() as cursor:
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
        statement, slots = self.compiled(using)
        like = connections[using].ops.prep_for_like_query
        params = tuple(
            param if slot is None else _FILL[slot[1]](values[slot[0]], like)
            for param, slot in zip(statement.params, slots, strict=True)
        )
        return statement.rows(params)

    def compiled(self, using: str = "default") -> tuple[Statement, list[tuple[str, str] | None]]:
        """The statement and where each parameter goes in it, compiled at the first call (for `using`)."""
        return self._compiled.get(using) or self._compile(using)

    def _compile(self, using: str) -> tuple[Statement, list[tuple[str, str] | None]]:
        markers = {name: _KINDS[kind](n) for n, (name, kind) in enumerate(self.parameters.items())}
        statement = Statement(self.build(**markers), using)
        named = {marker: name for name, marker in markers.items()}
        slots = [_slot(param, named) for param in statement.params]
        if {slot[0] for slot in slots if slot} != set(self.parameters):
            raise ValueError(f"each parameter must be one SQL parameter as it is: {sorted(self.parameters)}")
        self._compiled[using] = compiled = (statement, slots)
        return compiled


def _slot(param: Any, named: dict[Any, str]) -> tuple[str, str] | None:
    """(the parameter `param` stands for, how it is filled), or None for a value the queryset itself holds."""
    if isinstance(param, str | int | uuid.UUID) and param in named:
        return named[param], AS_IS
    if isinstance(param, str) and param.endswith("%") and param[:-1] in named:
        return named[param[:-1]], PREFIX
    if isinstance(param, str) and len(param) == 32:
        for marker, name in named.items():
            if isinstance(marker, uuid.UUID) and marker.hex == param:
                return name, HEX
    return None


class CompiledModelRead:
    """A `CompiledRead` of model instances: `build(**parameters)` returns a queryset of `model` (ordered, filtered,
    locked as the caller needs); its `fields` (attribute names, the primary key among them; every field when None)
    are read, the others deferred, as `only` would leave them, and each row becomes an instance as the ORM makes
    one (`Model.from_db`)."""

    def __init__(
        self, model: type[Model], fields: tuple[str, ...] | None, build: Callable[..., QuerySet], **parameters: type
    ):
        # Read in the model's order of fields, whatever the caller's: `from_db` lines the values of an instance with
        # deferred fields up with the model's fields in that order.
        declared = [f.attname for f in model._meta.concrete_fields]
        fields = tuple(declared) if fields is None else fields
        unknown = set(fields) - set(declared)
        if unknown or model._meta.pk.attname not in fields:
            raise ValueError(f"fields must be {model.__name__}'s, its primary key among them: {sorted(unknown)}")
        self.model, self.fields = model, [name for name in declared if name in fields]
        self.read = CompiledRead(lambda **values: build(**values).values_list(*self.fields), **parameters)

    def instances(self, using: str = "default", **values: Any) -> list[Model]:
        return [self.model.from_db(using, self.fields, row) for row in self.read.rows(using, **values)]
