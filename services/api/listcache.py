"""The service list's response cache: a JSON page is rendered once per version of what it shows.

Keyed on what makes the page: who looks (`selectors.list_versions`: a platform engineer, or the set of the
member's teams) with the versions of that data, which the database keeps (`services.models.ListVersion`, one read
before the data), the full path (filters, page, page size), host and scheme (the pagination links are absolute)
and the negotiated media type. A write anywhere — API, worker, admin, a bulk load — is a new version, so a key is
never served older data than it names; nothing is ever invalidated, entries age out (`LIST_CACHE_SECONDS`) or are
evicted (`LIST_CACHE_ENTRIES`). Authentication is not cached: each request is checked first, as any other.

Not cached: without versions (SQLite), inside a transaction (its own writes are counted only at its commit), and
for any renderer but JSON (the browsable API shows the user).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpResponse

from services import selectors

ALIAS = "service_lists"


def key(request) -> str | None:
    """The cache key of this list request, or None when its answer is not cached."""
    if not settings.LIST_CACHE_SECONDS or connection.in_atomic_block:
        return None
    renderer = getattr(request, "accepted_renderer", None)
    if renderer is None or renderer.format != "json":
        return None
    versions = selectors.list_versions(request.user)
    if versions is None:
        return None
    made_of = repr((versions, request.scheme, request.get_host(), request.get_full_path(), request.accepted_media_type))
    return "services-list:" + hashlib.sha256(made_of.encode()).hexdigest()


def get(cache_key: str | None) -> HttpResponse | None:
    if cache_key is None:
        return None
    body = caches[ALIAS].get(cache_key)
    return None if body is None else _response(body)


def store(cache_key: str | None, request, data, renderer_context) -> HttpResponse | None:
    """The page rendered as the request asked, kept under `cache_key`; None when it is not cached."""
    if cache_key is None:
        return None
    body = request.accepted_renderer.render(data, request.accepted_media_type, renderer_context)
    caches[ALIAS].set(cache_key, body, timeout=settings.LIST_CACHE_SECONDS)
    return _response(body)


def _response(body: bytes) -> HttpResponse:
    return HttpResponse(body, content_type="application/json")
