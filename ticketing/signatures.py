"""Pure: authenticate webhook deliveries. No ORM, no network — plain bytes, headers and secrets in.

Each verifier accepts several secrets so that a rotated-out secret stays valid during its overlap window.
A failed check raises `Unauthenticated` (answered 401) or `StaleTimestamp` (answered 400).

The generic kind follows the Standard Webhooks spec. The `standardwebhooks` library is not used for
verifying because it reports a stale timestamp and a forged signature with the same exception type
(the contract answers them differently: 400 and 401), it checks the timestamp before the signature
(so an unauthenticated caller could probe our clock), it fails with a bare ValueError on a malformed
signature list, and it signs a re-formatted timestamp instead of the header as sent. The tests check
that both agree on well-formed deliveries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable, Mapping

TOLERANCE_SECONDS = 5 * 60
WHSEC_PREFIX = "whsec_"
# The Standard Webhooks spec asks for secrets of 24 to 64 random bytes.
WHSEC_MIN_BYTES, WHSEC_MAX_BYTES = 24, 64
TOKEN_MIN_CHARS, TOKEN_MAX_CHARS = 16, 512
MAX_DELIVERY_ID_CHARS = 200
# Seconds since the epoch have 10 digits until the year 2286; more than this is no time (int() of 5,000 digits
# raises ValueError).
MAX_TIMESTAMP_DIGITS = 15
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces: it travels in an HTTP header


class Unauthenticated(Exception):
    """The delivery is not from the source: missing or wrong signature or token."""


class StaleTimestamp(Exception):
    """Authentic, but sent too long ago or too far in the future to rule out a replay."""


class MalformedHeader(Exception):
    """Authentic, but a header the kind needs is not in the accepted form."""

    def __init__(self, header: str, message: str):
        self.header = header
        super().__init__(message)


# --- secrets -------------------------------------------------------------------------------------------


def generate_secret(kind: str) -> str:
    """A fresh secret: `whsec_` + base64 of 32 random bytes for generic, a url-safe token otherwise."""
    if kind == "generic":
        return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(32)


def secret_problem(kind: str, secret: str) -> str | None:
    """Why `secret` cannot be used for a source of `kind`, or None when it can."""
    if kind == "generic":
        try:
            key = _whsec_key(secret)
        except ValueError:
            return "A generic (Standard Webhooks) secret must be `whsec_` + base64; leave it out to generate one."
        if not WHSEC_MIN_BYTES <= len(key) <= WHSEC_MAX_BYTES:
            return (
                f"A generic secret must decode to {WHSEC_MIN_BYTES}-{WHSEC_MAX_BYTES} bytes; this one has {len(key)}."
            )
        return None
    if not TOKEN_MIN_CHARS <= len(secret) <= TOKEN_MAX_CHARS or not _TOKEN_CHARS.match(secret):
        return (
            f"A {kind} secret must be {TOKEN_MIN_CHARS} to {TOKEN_MAX_CHARS} printable ASCII characters "
            "without spaces; leave it out to generate one."
        )
    return None


def _whsec_key(secret: str) -> bytes:
    encoded = secret.removeprefix(WHSEC_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc


# --- generic: Standard Webhooks --------------------------------------------------------------------------


def verify_standard_webhook(
    *, secrets_: Iterable[str], headers: Mapping[str, str], body: bytes, now: float, tolerance: int = TOLERANCE_SECONDS
) -> str:
    """Verify a Standard Webhooks delivery and return its `webhook-id`.

    The signed content is `{webhook-id}.{webhook-timestamp}.{body}` exactly as received;
    `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>` entries, any of which may match.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    signature_header = lowered.get("webhook-signature", "")
    missing = [
        h
        for h, v in (("webhook-id", msg_id), ("webhook-timestamp", timestamp), ("webhook-signature", signature_header))
        if not v
    ]
    if missing:
        raise Unauthenticated(f"Missing Standard Webhooks header(s): {', '.join(missing)}.")

    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    offered = _offered_v1_signatures(signature_header)
    if not any(
        hmac.compare_digest(hmac.new(_whsec_key(secret), signed, hashlib.sha256).digest(), candidate)
        for secret in secrets_
        for candidate in offered
    ):
        raise Unauthenticated("No webhook-signature entry matches this source's secret.")

    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise MalformedHeader("webhook-timestamp", "webhook-timestamp must be whole seconds since the Unix epoch.")
    check_fresh(int(timestamp), now=now, tolerance=tolerance, what="webhook-timestamp")
    if len(msg_id) > MAX_DELIVERY_ID_CHARS:
        raise MalformedHeader("webhook-id", f"webhook-id must be at most {MAX_DELIVERY_ID_CHARS} characters.")
    return msg_id


def _offered_v1_signatures(header: str) -> list[bytes]:
    """The decodable `v1` signatures of the header; other versions and garbled entries are skipped."""
    offered = []
    for entry in header.split(" "):
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            offered.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return offered


def check_fresh(timestamp: float, *, now: float, tolerance: int = TOLERANCE_SECONDS, what: str = "timestamp") -> None:
    """Refuse a timestamp further than `tolerance` seconds from `now`, however far (a number too large for a float,
    or not finite, is simply stale: it was an OverflowError, a 500)."""
    try:
        skew = now - float(timestamp)
    except OverflowError:
        skew = math.inf
    if not math.isfinite(skew):
        raise StaleTimestamp(f"{what} is nowhere near the server's clock; at most {tolerance} seconds either way.")
    if abs(skew) > tolerance:
        raise StaleTimestamp(
            f"{what} is {int(skew)} seconds away from the server's clock; "
            f"at most {tolerance} seconds either way are accepted."
        )


# --- jira: X-Hub-Signature ------------------------------------------------------------------------------


def verify_hub_signature(*, secrets_: Iterable[str], headers: Mapping[str, str], body: bytes) -> None:
    """Jira Cloud: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the secret's text."""
    lowered = {k.lower(): v for k, v in headers.items()}
    header = lowered.get("x-hub-signature", "")
    if not header:
        raise Unauthenticated("Missing X-Hub-Signature header.")
    method, _, hex_digest = header.partition("=")
    if method != "sha256" or not hex_digest:
        raise Unauthenticated("X-Hub-Signature must be `sha256=<hex HMAC-SHA256 of the body>`.")
    offered = hex_digest.strip().lower().encode()
    if not any(
        hmac.compare_digest(hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode(), offered)
        for secret in secrets_
    ):
        raise Unauthenticated("X-Hub-Signature does not match this source's secret.")


# --- servicenow: bearer token ---------------------------------------------------------------------------


def verify_bearer(*, secrets_: Iterable[str], headers: Mapping[str, str]) -> None:
    """ServiceNow cannot sign; it sends `Authorization: Bearer <token>`, compared in constant time."""
    lowered = {k.lower(): v for k, v in headers.items()}
    scheme, _, token = lowered.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Missing `Authorization: Bearer <token>` header.")
    offered = token.strip().encode()
    if not any(hmac.compare_digest(secret.encode(), offered) for secret in secrets_):
        raise Unauthenticated("The bearer token does not match this source's secret.")


def body_digest(body: bytes) -> str:
    """Delivery id for kinds whose deliveries carry no signed id: the SHA-256 of the exact body."""
    return "sha256:" + hashlib.sha256(body).hexdigest()
