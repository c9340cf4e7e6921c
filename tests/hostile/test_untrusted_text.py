"""Bodies a team token can send that were 500s: deep JSON, NUL characters and unpaired surrogates, in JSON or YAML.

Python's JSON decoder raised `RecursionError` on a few thousand `[` (every JSON endpoint); a lone surrogate echoed
in a refusal could not be encoded as UTF-8 (`{"cluster_selector": {"\\ud800": "x"}}`); a NUL reached a query
(`metadata.name: "a\\0"` in an apply). Each is a 400 now (`gatewayportal.jsonsafe`, `gatewayportal.yamlsafe`).
"""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.test import Client

from tests.factories import api_token, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def tokens():
    member = make_user("alice")
    make_team("payments", members=[member])
    make_cluster()
    return api_token(member), api_token(make_user("root", platform=True))


def send(token: str, method: str, path: str, body: bytes, content_type: str = "application/json"):
    client = Client(raise_request_exception=False)
    return getattr(client, method)(path, data=body, content_type=content_type, HTTP_AUTHORIZATION=f"Token {token}")


MEMBER_WRITES = [
    ("post", "/api/v1/gateway-services/"),
    ("post", "/api/v1/gateway-services/?dry_run=true"),
    ("post", "/api/v1/gateway-services/apply/?apply_set=ci"),
]
PLATFORM_WRITES = [
    ("post", "/api/v1/teams/"),
    ("post", "/api/v1/clusters/"),
    ("post", "/api/v1/ticketing-sources/"),
]


@pytest.mark.parametrize(("method", "path"), MEMBER_WRITES + PLATFORM_WRITES)
def test_deeply_nested_json_is_a_400(tokens, method, path):
    token = tokens[0] if (method, path) in MEMBER_WRITES else tokens[1]
    for body in (b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, json.dumps(_nested(80)).encode()):
        answer = send(token, method, path, body)
        assert answer.status_code == 400, (body[:12], answer.status_code, answer.content[:200])
        assert answer.json()["detail"].startswith("JSON parse error")


def _nested(depth: int):
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "payload",
    [
        http_service(cluster_selector={"\ud800": "x"}),
        {**http_service(), "\ud800": 1},
        {**http_service(), "\x00": 1},
        http_service(cluster_selector={"env": "\ud800"}),
    ],
    ids=["surrogate label key", "surrogate field name", "NUL field name", "surrogate label value"],
)
def test_nul_and_lone_surrogates_in_json_are_a_400(tokens, payload):
    for path in ("/api/v1/gateway-services/", "/api/v1/gateway-services/?dry_run=true"):
        answer = send(tokens[0], "post", path, json.dumps(payload).encode())
        assert answer.status_code == 400, (path, answer.status_code, answer.content[:200])


PORTAL = """apiVersion: gatewayportal.io/v1
kind: GatewayService
metadata: {{name: {name}, namespace: payments}}
spec:
  hosts: [checkout.payments.example.com]
  port: 80
  protocol: HTTP
  traffic_type: ingress
  clusters: [prod-eu-1]
  {extra}
"""
OPERATOR = """apiVersion: gatewayservice.xunholy.github.com/v1alpha1
kind: GatewayService
metadata: {{name: {name}, namespace: payments}}
spec:
  hosts: [checkout.payments.example.com]
  port: 80
  protocol: HTTP
  {extra}
"""


@pytest.mark.parametrize(
    "text",
    [
        PORTAL.format(name="checkout", extra='cluster_selector: {"\\ud800": x}'),
        PORTAL.format(name="checkout", extra='"\\ud800": 1'),
        OPERATOR.format(name='"a\\0"', extra=""),
        OPERATOR.format(name='"a\\ud800"', extra=""),
        OPERATOR.format(name="checkout", extra='"\\ud800": 1'),
    ],
    ids=["portal label key", "portal field name", "operator NUL name", "operator surrogate name", "operator field"],
)
def test_nul_and_lone_surrogates_in_yaml_are_a_400(tokens, text):
    paths = ["/api/v1/gateway-services/apply/?apply_set=ci&clusters=prod-eu-1"]
    if "xunholy" in text:
        paths.append("/api/v1/gateway-services/import/?clusters=prod-eu-1")  # the import reads the operator's only
    for path in paths:
        answer = send(tokens[0], "post", path, text.encode(), content_type="application/yaml")
        assert answer.status_code == 400, (path, answer.status_code, answer.content[:200])


@pytest.mark.parametrize("charset", ["rot13", "base64", "zlib"])
def test_a_charset_that_is_no_text_encoding_is_a_400(tokens, charset):
    """Python knows these codecs, so Django takes the declared charset; decoding a body with one raised (500s)."""
    client = Client(raise_request_exception=False)
    for path, media_type, body in [
        ("/api/v1/gateway-services/", "application/json", json.dumps(http_service()).encode()),
        ("/api/v1/gateway-services/import/", "application/yaml", b"kind: GatewayService"),
    ]:
        answer = client.generic(
            "POST",
            path,
            data=body,
            content_type=f"{media_type}; charset={charset}",
            HTTP_AUTHORIZATION=f"Token {tokens[0]}",
        )
        assert answer.status_code == 400, (path, media_type, answer.status_code, answer.content[:200])
        assert "is not a text encoding" in answer.json()["detail"]


def _wsgi(content_type: str) -> tuple[str, bytes]:
    """One request to the WSGI application gunicorn serves (the test client builds its requests itself)."""
    from gatewayportal.wsgi import application

    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD="POST",
        PATH_INFO="/api/v1/gateway-services/apply/",
        QUERY_STRING="apply_set=ci",
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH="4",
        SERVER_NAME="testserver",
        HTTP_HOST="testserver",
    )
    environ["wsgi.input"] = io.BytesIO(b"a: b")
    started: list[str] = []
    body = b"".join(application(environ, lambda status, headers, *_: started.append(status)))
    return started[0], body


def test_a_charset_that_is_no_text_encoding_is_a_400_before_django_reads_the_query_string():
    """With a query string, Django itself decoded it with the declared codec while building the request: a
    `LookupError` no middleware saw (a 500 from gunicorn, unauthenticated)."""
    status, body = _wsgi("application/yaml; charset=rot13")
    assert status.startswith("400"), (status, body[:200])
    assert json.loads(body) == {"detail": "The charset 'rot13' is not a text encoding."}

    status, _ = _wsgi("application/yaml; charset=utf-8")  # a text encoding goes on to Django: no token, 401
    assert status.startswith("401"), status
