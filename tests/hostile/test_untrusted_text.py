"""Bodies a team token can send that were 500s: deep JSON, NUL characters and unpaired surrogates, in JSON or YAML.

Python's JSON decoder raised `RecursionError` on a few thousand `[` (every JSON endpoint); a lone surrogate echoed
in a refusal could not be encoded as UTF-8 (`{"cluster_selector": {"\\ud800": "x"}}`); a NUL reached a query
(`metadata.name: "a\\0"` in an apply). Each is a 400 now (`gatewayportal.jsonsafe`, `gatewayportal.yamlsafe`).
"""

from __future__ import annotations

import json

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
