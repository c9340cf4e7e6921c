"""Pure signature checks: no database. Signatures are computed here by hand from the specs."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from ticketing import signatures
from ticketing.signatures import MalformedHeader, StaleTimestamp, Unauthenticated

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
NOW = 1_718_000_000
BODY = b'{"event": "ticket.approved", "ticket": "OPS-123"}'


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(secret: str = SECRET, *, msg_id: str = "msg_1", timestamp: int = NOW, body: bytes = BODY):
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, msg_id, str(timestamp), body),
    }


def verify(headers, *, body: bytes = BODY, secrets_=(SECRET,), now: float = NOW) -> str:
    return signatures.verify_standard_webhook(secrets_=secrets_, headers=headers, body=body, now=now)


def test_standard_webhook_accepts_a_correct_signature_and_returns_the_id():
    assert verify(standard_headers()) == "msg_1"


def test_standard_webhook_header_names_are_case_insensitive():
    headers = {k.title(): v for k, v in standard_headers().items()}
    assert verify(headers) == "msg_1"


def test_standard_webhook_accepts_any_of_several_space_separated_signatures():
    headers = standard_headers()
    headers["webhook-signature"] = " ".join(
        [standard_signature(OTHER, "msg_1", str(NOW), BODY), "v2,bm90LWEtdjE=", "garbage", headers["webhook-signature"]]
    )
    assert verify(headers) == "msg_1"


def test_standard_webhook_agrees_with_the_reference_library():
    ts = datetime.fromtimestamp(NOW, tz=UTC)
    signature = Webhook(SECRET).sign("msg_lib", ts, BODY.decode())
    headers = {"webhook-id": "msg_lib", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    assert verify(headers) == "msg_lib"


def test_standard_webhook_accepts_the_previous_secret_when_offered():
    assert verify(standard_headers(OTHER), secrets_=(SECRET, OTHER)) == "msg_1"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: h.update({"webhook-signature": standard_signature(OTHER, "msg_1", str(NOW), BODY)}),
        lambda h: h.update({"webhook-id": "msg_2"}),
        lambda h: h.update({"webhook-signature": "v1,!!!not-base64"}),
        lambda h: h.update({"webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}),
    ],
    ids=["other-secret", "changed-id", "garbled", "wrong-version"],
)
def test_standard_webhook_refuses_forged_signatures(tamper):
    headers = standard_headers()
    tamper(headers)
    with pytest.raises(Unauthenticated):
        verify(headers)


def test_standard_webhook_refuses_a_changed_body():
    with pytest.raises(Unauthenticated):
        verify(standard_headers(), body=BODY + b" ")


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_webhook_refuses_missing_headers(missing):
    headers = standard_headers()
    del headers[missing]
    with pytest.raises(Unauthenticated, match=missing):
        verify(headers)


@pytest.mark.parametrize("offset", [-301, 301])
def test_standard_webhook_refuses_stale_timestamps_either_way(offset):
    with pytest.raises(StaleTimestamp):
        verify(standard_headers(timestamp=NOW + offset))


@pytest.mark.parametrize("offset", [-300, 300])
def test_standard_webhook_accepts_timestamps_at_the_tolerance(offset):
    assert verify(standard_headers(timestamp=NOW + offset)) == "msg_1"


def test_standard_webhook_checks_the_signature_before_the_timestamp():
    headers = standard_headers(timestamp=NOW - 3600)
    headers["webhook-signature"] = standard_signature(OTHER, "msg_1", str(NOW - 3600), BODY)
    with pytest.raises(Unauthenticated):
        verify(headers)


def test_standard_webhook_refuses_a_signed_non_integer_timestamp():
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1718000000.5",
        "webhook-signature": standard_signature(SECRET, "msg_1", "1718000000.5", BODY),
    }
    with pytest.raises(MalformedHeader) as exc:
        verify(headers)
    assert exc.value.header == "webhook-timestamp"


def hub(secret: str, body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def test_hub_signature_accepts_hex_hmac_of_the_raw_body():
    signatures.verify_hub_signature(
        secrets_=["jira-secret-0123456789"], headers=hub("jira-secret-0123456789", BODY), body=BODY
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature": "sha1=" + hmac.new(b"jira-secret-0123456789", BODY, hashlib.sha1).hexdigest()},
        hub("another-secret-0123456789", BODY),
        hub("jira-secret-0123456789", BODY + b"\n"),
    ],
    ids=["missing", "sha1", "other-secret", "other-body"],
)
def test_hub_signature_refuses_missing_or_wrong_signatures(headers):
    with pytest.raises(Unauthenticated):
        signatures.verify_hub_signature(secrets_=["jira-secret-0123456789"], headers=headers, body=BODY)


def test_bearer_accepts_the_token_and_refuses_others():
    token = "sn-token-0123456789abcdef"
    signatures.verify_bearer(secrets_=[token], headers={"Authorization": f"Bearer {token}"})
    for headers in ({}, {"Authorization": f"Basic {token}"}, {"Authorization": "Bearer nope-0123456789abcdef"}):
        with pytest.raises(Unauthenticated):
            signatures.verify_bearer(secrets_=[token], headers=headers)


def test_generated_secrets_are_valid_for_their_kind():
    generic = signatures.generate_secret("generic")
    assert generic.startswith("whsec_") and len(base64.b64decode(generic[6:])) == 32
    assert signatures.secret_problem("generic", generic) is None
    assert signatures.secret_problem("jira", signatures.generate_secret("jira")) is None
    assert signatures.generate_secret("servicenow") != signatures.generate_secret("servicenow")


@pytest.mark.parametrize(
    ("kind", "secret"),
    [
        ("generic", "whsec_not base64"),
        ("generic", "whsec_" + base64.b64encode(b"short").decode()),
        ("jira", "short"),
        ("servicenow", "has spaces in the token"),
    ],
)
def test_unusable_secrets_are_explained(kind, secret):
    assert signatures.secret_problem(kind, secret)


def test_body_digest_is_sha256_of_the_exact_body():
    assert signatures.body_digest(BODY) == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert signatures.body_digest(BODY) != signatures.body_digest(BODY + b" ")
