"""Forged and stale bearer JWTs, from an issuer the tests control (its own keys, a tiny JWKS server).

The happy path with a real OpenID provider is in tests/services/test_identity.py; these tokens are minted here
so that each refusal has exactly one thing wrong.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from rest_framework.test import APIClient

from services.identity import discovery
from tests.certs import Generated, make_ca, make_cert
from tests.factories import make_team

pytestmark = pytest.mark.django_db

AUDIENCE = "urn:test:api"
TEAMS = "/api/v1/teams/"


@functools.cache
def signing_keys() -> dict:
    """The test issuer's keys, made once for the module (RSA generation is the slow part of every test)."""
    return {
        "rsa-a": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa-b": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-a": ec.generate_private_key(ec.SECP256R1()),
        "ed-a": ed25519.Ed25519PrivateKey.generate(),
    }


class Issuer:
    """An OpenID issuer: a discovery document and a JWKS whose keys the test can rotate; requests are counted."""

    def __init__(self, tls: Generated | None = None) -> None:
        self.keys = signing_keys()
        self.published = ["rsa-a", "ec-a", "ed-a"]
        self.requests: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    body = {"keys": [issuer.public_jwk(kid) for kid in issuer.published]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            scheme = "https"
            folder = Path(tempfile.mkdtemp())
            (folder / "cert.pem").write_text(tls.cert_pem)
            (folder / "key.pem").write_text(tls.key_pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def public_jwk(self, kid: str) -> dict:
        key = self.keys[kid].public_key()
        algorithm = {"rsa": RSAAlgorithm, "ec": ECAlgorithm, "ed": OKPAlgorithm}[kid.split("-")[0]]
        return {**json.loads(algorithm.to_jwk(key)), "kid": kid, "use": "sig"}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": "dave", "iat": now, "exp": now + 300, "groups": ["devs"]}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, kid: str = "rsa-a", alg: str | None = None, **overrides) -> str:
        alg = alg or {"rsa": "RS256", "ec": "ES256", "ed": "EdDSA"}[kid.split("-")[0]]
        return jwt.encode(self.claims(**overrides), self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture
def issuer(settings) -> Iterator[Issuer]:
    yield from serve(settings, Issuer())


def serve(settings, server: Issuer) -> Iterator[Issuer]:
    settings.OIDC_ISSUER = server.url
    settings.OIDC_API_AUDIENCE = AUDIENCE
    settings.OIDC_PLATFORM_GROUPS = []
    discovery.reset()
    team = make_team("payments")
    team.idp_groups = ["devs"]
    team.save()
    yield server
    discovery.reset()
    server.server.shutdown()


def call(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(TEAMS)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("kid", ["rsa-a", "ec-a", "ed-a"])
def test_rs256_es256_and_eddsa_are_accepted(issuer, kid):
    response = call(issuer.mint(kid))
    assert response.status_code == 200, response.json()
    assert [t["slug"] for t in response.json()["results"]] == ["payments"]


def test_expired_token_is_refused(issuer):
    response = call(issuer.mint(exp=int(time.time()) - 61 - 5))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_clock_skew_under_a_minute_is_tolerated(issuer):
    assert call(issuer.mint(exp=int(time.time()) - 30)).status_code == 200


def test_not_yet_valid_token_is_refused(issuer):
    assert call(issuer.mint(nbf=int(time.time()) + 120)).status_code == 401
    assert call(issuer.mint(iat=int(time.time()) + 120)).status_code == 401


def test_wrong_audience_is_refused(issuer):
    response = call(issuer.mint(aud="urn:someone-else"))
    assert response.status_code == 401
    assert "not trusted" in response.json()["detail"]


def test_wrong_issuer_is_refused_without_any_network_call(issuer):
    # The forged issuer is served by the same server: any discovery or key fetch for it would be counted.
    response = call(issuer.mint(iss=f"{issuer.url}/evil"))
    assert response.status_code == 401
    assert issuer.requests == []


def test_alg_none_is_refused(issuer):
    token = jwt.encode(issuer.claims(), None, algorithm="none")
    response = call(token)
    assert response.status_code == 401
    assert "'none' is not accepted" in response.json()["detail"]


def test_hs256_signed_with_the_public_key_is_refused(issuer):
    public_pem = (
        issuer.keys["rsa-a"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-a"}).encode())
    payload = b64(json.dumps(issuer.claims()).encode())
    signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    response = call(f"{header}.{payload}.{signature}")
    assert response.status_code == 401
    assert "'HS256' is not accepted" in response.json()["detail"]


def test_key_of_another_type_under_a_published_kid_is_refused(issuer):
    forged = jwt.encode(issuer.claims(), issuer.keys["rsa-b"], algorithm="RS256", headers={"kid": "rsa-a"})
    assert call(forged).status_code == 401
    mismatch = jwt.encode(issuer.claims(), issuer.keys["ec-a"], algorithm="ES256", headers={"kid": "rsa-a"})
    assert call(mismatch).status_code == 401


def test_unknown_kid_after_rotation_is_accepted_once_the_jwks_is_refreshed(issuer, monkeypatch):
    assert call(issuer.mint("rsa-a")).status_code == 200
    assert issuer.requests.count("/jwks") == 1
    issuer.published = ["rsa-a", "rsa-b"]  # the issuer rotates in a new key

    # Within a minute of the last fetch an unknown kid does not refetch: random kids cannot hammer the issuer.
    assert call(issuer.mint("rsa-b")).status_code == 401
    assert issuer.requests.count("/jwks") == 1

    later = time.monotonic() + 61
    monkeypatch.setattr(jwt.jwks_client, "time", type("Clock", (), {"monotonic": staticmethod(lambda: later)}))
    response = call(issuer.mint("rsa-b"))
    assert response.status_code == 200, response.json()
    assert issuer.requests.count("/jwks") == 2
    # The refreshed set is cached: known keys need no further fetch.
    assert call(issuer.mint("rsa-a")).status_code == 200
    assert issuer.requests.count("/jwks") == 2


def test_missing_required_claims_are_refused(issuer):
    assert call(issuer.mint(exp=None)).status_code == 401
    assert call(issuer.mint(sub=None)).status_code == 401


def test_garbage_bearer_is_refused(issuer):
    assert call("not-a-jwt").status_code == 401
    assert issuer.requests == []


@pytest.fixture
def internal_ca_issuer(settings, monkeypatch) -> Iterator[tuple[Issuer, Generated]]:
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    ca = make_ca("Internal CA")
    leaf = make_cert(common_name="127.0.0.1", dns_names=["localhost"], ip_addresses=["127.0.0.1"], issuer=ca)
    for server in serve(settings, Issuer(tls=leaf)):
        yield server, ca


def test_https_issuer_is_verified_against_the_system_store(internal_ca_issuer):
    server, _ = internal_ca_issuer
    response = call(server.mint())
    assert response.status_code == 401
    assert "cannot be reached" in response.json()["detail"]


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_an_internal_ca_is_trusted_through_the_environment(internal_ca_issuer, monkeypatch, tmp_path, variable):
    server, ca = internal_ca_issuer
    bundle = tmp_path / "internal-ca.pem"
    bundle.write_text(ca.cert_pem)
    monkeypatch.setenv(variable, str(bundle))
    response = call(server.mint())
    assert response.status_code == 200, response.json()
