"""Verifying JWTs with PyJWT: asymmetric algorithms only, the issuer's published keys, bounded clock skew."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

import jwt

from services.identity import discovery

ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 60
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


class TokenRefused(Exception):
    """The token is not accepted; the message is safe to show to the caller."""


def unverified_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims WITHOUT any check: only to route the token to the issuer that must then verify it."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenRefused("The bearer token is not a well-formed JWT.")
    if not isinstance(claims.get("iss"), str):
        raise TokenRefused("The bearer token names no issuer (iss).")
    return header, claims


def audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


def verify(token: str, *, issuer: str, audience: str | Iterable[str]) -> dict[str, Any]:
    """The verified claims of a token from `issuer` for `audience` (one of, when several are given).

    The algorithm must be one of ALLOWED_ALGORITHMS and match the published key's type, so `none` and HS*
    (e.g. HMAC keyed with the public key) never reach a signature check.
    """
    header = jwt.get_unverified_header(token)
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        accepted = ", ".join(ALLOWED_ALGORITHMS)
        raise TokenRefused(f"The token's algorithm {alg!r} is not accepted; use one of {accepted}.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRefused("The token's header names no key id (kid).")
    try:
        key = discovery.key_client(issuer).get_signing_key(kid)
    except (discovery.DiscoveryError, jwt.PyJWKClientConnectionError):
        raise TokenRefused("The token's issuer cannot be reached to read its keys; try again later.")
    except jwt.PyJWKClientError:
        raise TokenRefused("The token is signed with a key its issuer does not publish.")
    if key.algorithm_name != alg:
        raise TokenRefused("The token's algorithm does not match its signing key.")
    try:
        return jwt.decode(
            token,
            key=key.key,
            algorithms=[alg],
            issuer=issuer,
            audience=audience if isinstance(audience, str) else list(audience),
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("The token has expired.")
    except jwt.ImmatureSignatureError:
        raise TokenRefused("The token is not valid yet (nbf or iat in the future).")
    except jwt.InvalidAudienceError:
        raise TokenRefused("The token is not meant for this portal (aud).")
    except jwt.InvalidIssuerError:
        raise TokenRefused("The token's issuer is not trusted.")
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRefused(f"The token lacks the {exc.claim!r} claim.")
    except jwt.PyJWTError:
        raise TokenRefused("The token's signature does not verify.")


def claims_match(patterns: dict[str, str], claims: dict[str, Any]) -> bool:
    """Every pattern matches its claim (case-sensitive glob: `*`, `?`, `[…]`); a missing or non-text claim fails."""
    if not patterns:
        return False
    for name, pattern in patterns.items():
        value = claims.get(name)
        if isinstance(value, bool) or not isinstance(value, str | int):
            return False
        if not fnmatchcase(str(value), pattern):
            return False
    return True
