"""The service list's response cache: a JSON page is rendered once per version of what it shows.

Keyed on what makes the page: who looks (`selectors.list_versions`: a platform engineer, or the set of the
member's teams) with the versions of that data, which the database keeps (`services.models.ListVersion`, one read
before the data), the full path (filters, page, page size), host and scheme (the pagination links are absolute)
and the negotiated media type. A write anywhere — API, worker, admin, a bulk load — is a new version, so a key is
never served older data than it names; nothing is ever invalidated, entries age out (`LIST_CACHE_SECONDS`) or are
evicted (`LIST_CACHE_ENTRIES`). Authentication is not cached: each request is checked first, as any other.

The page is read for the teams the key was read for (`Key.teams`), never for a membership read again: a member
added to a team meanwhile cannot leave that team's services under a key that other members share.

Not cached: without versions (SQLite), inside a transaction (its own writes are counted only at its commit), for
any renderer but JSON (the browsable API shows the user), with parameters that are not the list's own or given
twice, and pages over `MAX_BYTES`.

What the versions do not see (docs/operations.md): TRUNCATE, writes made with `session_replication_role =
replica`, and writes in a transaction that ran `SET CONSTRAINTS ALL IMMEDIATE` (the count then runs before the
note). After such a write by hand, flush the cache or wait LIST_CACHE_SECONDS.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpResponse

from gatewayportal.pagination import PageNumberPagination
from services import selectors
from services.filtersets import GatewayServiceFilterSet

ALIAS = "service_lists"
# The parameters a cached list may have: pagination, the renderer, the filters (services.filtersets).
PAGINATION = frozenset({PageNumberPagination.page_query_param, PageNumberPagination.page_size_query_param})
PARAMETERS = frozenset({*PAGINATION, "format", *GatewayServiceFilterSet.base_filters})
# A page larger than this is answered but not kept (a page of 50 services is about 45 KB; `page_size` goes to 500):
# LIST_CACHE_ENTRIES pages hold at most that many times this much.
MAX_BYTES = 128 * 1024


class Key(NamedTuple):
    name: str
    # The member's teams as the key was read for them (None: a platform engineer's, every team): the page is read
    # for these same teams, never for a membership read again later (`selectors.visible_services`).
    teams: tuple[int, ...] | None


def key(request) -> Key | None:
    """The cache key of this list request, or None when its answer is not cached."""
    if not settings.LIST_CACHE_SECONDS or connection.in_atomic_block:
        return None
    renderer = getattr(request, "accepted_renderer", None)
    if renderer is None or renderer.format != "json":
        return None
    params = request.query_params
    if any(name not in PARAMETERS or len(params.getlist(name)) > 1 for name in params):
        return None  # only the list's own parameters, each once: `?junk=N` is no new entry each time
    versions = selectors.list_versions(request.user)
    if versions is None:
        return None
    # The API's version too: with a shared cache (LIST_CACHE_URL), processes of two releases never share pages.
    api = settings.SPECTACULAR_SETTINGS["VERSION"]
    made_of = repr(
        (api, versions, request.scheme, request.get_host(), request.get_full_path(), request.accepted_media_type)
    )
    teams = tuple(team for team, *_ in versions[1]) if versions[0] == "teams" else None
    return Key("services-list:" + hashlib.sha256(made_of.encode()).hexdigest(), teams)


def get(cache_key: Key | None) -> HttpResponse | None:
    if cache_key is None:
        return None
    body = caches[ALIAS].get(cache_key.name)
    return None if body is None else _response(body)


def store(cache_key: Key | None, request, data, renderer_context) -> HttpResponse | None:
    """The page rendered as the request asked, kept under `cache_key`; None when it is not cached."""
    if cache_key is None:
        return None
    body = request.accepted_renderer.render(data, request.accepted_media_type, renderer_context)
    if len(body) <= MAX_BYTES:
        caches[ALIAS].set(cache_key.name, body, timeout=settings.LIST_CACHE_SECONDS)
    return _response(body)


def _response(body: bytes) -> HttpResponse:
    return HttpResponse(body, content_type="application/json")
