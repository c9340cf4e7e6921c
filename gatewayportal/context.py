"""Who is acting, through which door, under which request id: carried across a request or task."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    name: str = "system"
    source: str = "api"  # api admin webhook worker scheduler cli
    request_id: str = ""
    # The identity-provider identity behind `name` ({"issuer", "subject", "email"?}), for people and pipelines
    # that signed in through an IdP; audit events carry it in their `data`.
    identity: dict | None = None


_current: contextvars.ContextVar[Actor] = contextvars.ContextVar("gatewayportal_actor", default=Actor())


def current_actor() -> Actor:
    return _current.get()


@contextlib.contextmanager
def acting_as(*, name: str | None = None, source: str | None = None, request_id: str | None = None) -> Iterator[Actor]:
    before = _current.get()
    actor = Actor(
        name=name if name is not None else before.name,
        source=source if source is not None else before.source,
        request_id=request_id if request_id is not None else before.request_id,
        identity=before.identity if name is None or name == before.name else None,
    )
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def set_actor_name(name: str, identity: dict | None = None) -> None:
    """Names the authenticated user (and their IdP identity, if any) for the rest of the current request or task."""
    before = _current.get()
    if identity is None and name == before.name:
        identity = before.identity
    _current.set(Actor(name=name, source=before.source, request_id=before.request_id, identity=identity))
