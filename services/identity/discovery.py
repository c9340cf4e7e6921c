"""Issuers' discovery documents and signing keys, fetched on first use and cached per process.

Only issuers the portal already trusts (OIDC_ISSUER, or one named by a team's trusted identity) ever reach this
module: callers route a token on its unverified `iss` first, so an unknown issuer costs no network call.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
from django.conf import settings
from jwt import PyJWKClient

from gatewayportal.outbound import ca_bundle, ssl_context


class DiscoveryError(Exception):
    """The issuer's discovery document could not be fetched or does not describe that issuer."""


_lock = threading.Lock()
_documents: dict[str, tuple[float, dict[str, Any]]] = {}
_key_clients: dict[str, PyJWKClient] = {}


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def document(issuer: str) -> dict[str, Any]:
    """The issuer's OpenID discovery document (cached for OIDC_DISCOVERY_CACHE_SECONDS)."""
    now = time.monotonic()
    with _lock:
        cached = _documents.get(issuer)
        if cached and now - cached[0] < settings.OIDC_DISCOVERY_CACHE_SECONDS:
            return cached[1]
    try:
        response = requests.get(
            discovery_url(issuer),
            timeout=settings.OIDC_HTTP_TIMEOUT_SECONDS,
            verify=ca_bundle(),
            allow_redirects=False,
        )
        response.raise_for_status()
        doc = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise DiscoveryError(f"cannot read the discovery document of {issuer}: {exc}") from exc
    # OpenID Connect Discovery 1.0, section 4.3: the document must name exactly the issuer it was fetched for.
    if not isinstance(doc, dict) or doc.get("issuer") != issuer or not isinstance(doc.get("jwks_uri"), str):
        raise DiscoveryError(f"the discovery document of {issuer} does not describe that issuer")
    with _lock:
        _documents[issuer] = (now, doc)
    return doc


def endpoint(issuer: str, name: str) -> str | None:
    value = document(issuer).get(name)
    return value if isinstance(value, str) else None


def key_client(issuer: str) -> PyJWKClient:
    """PyJWT's JWKS client for the issuer: the key set is cached, and an unknown `kid` refetches it at most
    once per OIDC_JWKS_REFRESH_SECONDS."""
    jwks_uri = document(issuer)["jwks_uri"]
    with _lock:
        client = _key_clients.get(jwks_uri)
        if client is None:
            client = PyJWKClient(
                jwks_uri,
                cache_jwk_set=True,
                lifespan=settings.OIDC_DISCOVERY_CACHE_SECONDS,
                timeout=settings.OIDC_HTTP_TIMEOUT_SECONDS,
                ssl_context=ssl_context(),
                cooldown_duration=settings.OIDC_JWKS_REFRESH_SECONDS,
            )
            _key_clients[jwks_uri] = client
        return client


def reset() -> None:
    """Forget every cached document and key set (tests; a settings change)."""
    with _lock:
        _documents.clear()
        _key_clients.clear()
