"""Every field of every write refuses a wrong JSON type with a 400 naming the field, never a 5xx.

For each write (gateway services and their nested tls_options, teams, clusters, ticketing sources, approve and
reject bodies, the generic webhook body) a valid payload is taken and one field at a time is replaced by a list,
an object, a number, a boolean, null or a string. The answer is never a 5xx; a 400 names the field it refused.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.certs import make_ca, make_cert
from tests.factories import api_client, http_service, make_cluster, make_team, make_user
from tests.ticketing.helpers import GENERIC_SECRET, make_pending_revision, standard_headers, url

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
)
WRONG = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
)
SETTINGS = settings(
    max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def _tls_service() -> dict[str, Any]:
    ca = make_ca()
    leaf = make_cert(dns_names=["secure.payments.example.com"], issuer=ca)
    return http_service(
        name="secure",
        hosts=["secure.payments.example.com"],
        port=443,
        protocol="HTTPS",
        mode="MUTUAL",
        tls_options={"tls_secret": {"cert": leaf.cert_pem, "key": leaf.key_pem, "ca_cert": ca.cert_pem}},
        min_protocol_version="TLSV1_2",
        max_protocol_version="TLSV1_3",
    )


def _path_service() -> dict[str, Any]:
    return http_service(
        name="secure",
        hosts=["secure.payments.example.com"],
        port=443,
        protocol="HTTPS",
        mode="SIMPLE",
        tls_options={"tls_secret_path": {"cert_path": "/etc/istio/a/tls.crt", "key_path": "/etc/istio/a/tls.key"}},
    )


def _replace(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    payload = json.loads(json.dumps(payload))
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


def _leaves(payload: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in payload.items():
        paths.append((*prefix, key))
        if isinstance(value, dict) and value and key != "labels" and key != "cluster_selector":
            paths.extend(_leaves(value, (*prefix, key)))
    return paths


def _names_field(answer, path: tuple[str, ...]) -> bool:
    body = answer.json()
    for key in path:
        if isinstance(body, list):
            return True  # the error names a field on the way (e.g. the whole tls_options)
        if not isinstance(body, dict):
            return False
        if key not in body:
            return "non_field_errors" in body or "detail" in body
        body = body[key]
    return True


@pytest.fixture
def world(db, settings):
    settings.TICKETING_RATE_LIMIT = "100000/min"
    settings.ALLOW_INSECURE_CLUSTERS = True
    member, platform = make_user("alice"), make_user("root", platform=True)
    team = make_team("payments", members=[member], allow_wildcards=True)
    make_cluster()
    from ticketing.models import TicketingSource

    TicketingSource.objects.create(name="ops-generic", kind="generic", team=team, secret=GENERIC_SECRET)
    pending = make_pending_revision(team, name="waiting")
    return {"member": api_client(member), "platform": api_client(platform), "pending": pending.service_id}


def _no_raise(client: APIClient) -> APIClient:
    client.raise_request_exception = False
    return client


def _send(client, method: str, path: str, payload: Any):
    with transaction.atomic():
        answer = getattr(_no_raise(client), method)(path, payload, format="json")
        transaction.set_rollback(True)
    return answer


def _check(answer, path: tuple[str, ...]) -> None:
    assert answer.status_code < 500, (path, answer.status_code, answer.content[:300])
    if answer.status_code == 400:
        assert _names_field(answer, path), (path, answer.json())


SERVICE_PAYLOADS = {"http": http_service, "mutual": _tls_service, "path": _path_service}


def _service_cases() -> list[tuple[str, tuple[str, ...]]]:
    shapes = {
        "http": list(http_service()),
        "tls": ["mode", "min_protocol_version", "max_protocol_version", "tls_options", ("tls_options", "tls_secret")],
    }
    cases = [("http", (name,)) for name in [*shapes["http"], "cluster_selector", "https_redirect", "team", "ticket"]]
    cases += [("mutual", (name,) if isinstance(name, str) else name) for name in shapes["tls"]]
    cases += [("mutual", ("tls_options", "tls_secret", key)) for key in ("cert", "key", "ca_cert")]
    cases += [("path", ("tls_options", "tls_secret_path")), ("path", ("tls_options", "tls_secret_path", "cert_path"))]
    cases += [("path", ("tls_options", "tls_secret_path", "key_path"))]
    cases += [("http", ("tls_options",))]
    return sorted(set(cases))


@pytest.mark.parametrize(("shape", "path"), _service_cases(), ids=lambda v: v if isinstance(v, str) else ".".join(v))
@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_gateway_service_fields_refuse_wrong_types(world, shape, path, method):
    base = SERVICE_PAYLOADS[shape]()
    service_id = None
    if method != "post":
        created = world["member"].post("/api/v1/gateway-services/", base, format="json")
        assert created.status_code == 201, created.json()
        service_id = created.json()["id"]
    target = "/api/v1/gateway-services/?dry_run=true" if method == "post" else f"/api/v1/gateway-services/{service_id}/"

    @SETTINGS
    @example(["HTTP"])
    @example({"HTTP": 1})
    @given(WRONG)
    def attack(value):
        _check(_send(world["member"], method, target, _replace(base, path, value)), path)

    attack()


TEAM = {
    "slug": "shop",
    "name": "Shop",
    "namespaces": ["shop"],
    "allowed_domains": ["shop.example.com"],
    "allow_wildcards": False,
    "members": ["alice"],
}
CLUSTER = {
    "name": "prod-us-1",
    "api_server": "https://127.0.0.1:2",
    "token": "a-token",
    "ca_cert": "",
    "labels": {"env": "prod"},
    "ingress_gateway": "istio-system/ingressgateway",
    "egress_gateway": "istio-system/egressgateway",
    "ingress_secret_namespace": "istio-system",
    "egress_secret_namespace": "istio-system",
    "namespace_scoped_hosts": False,
    "requires_approval": False,
    "enabled": True,
}
SOURCE = {
    "name": "snow",
    "kind": "servicenow",
    "team": "payments",
    "secret": "servicenow-bearer-token-0123456789",
    "approved_statuses": ["approved"],
    "rejected_statuses": ["rejected"],
    "enabled": True,
}
PLATFORM_WRITES = [
    ("post", "/api/v1/teams/", TEAM),
    ("patch", "/api/v1/teams/payments/", TEAM),
    ("post", "/api/v1/clusters/", CLUSTER),
    ("patch", "/api/v1/clusters/prod-eu-1/", {k: v for k, v in CLUSTER.items() if k != "name"}),
    ("post", "/api/v1/ticketing-sources/", SOURCE),
    ("patch", "/api/v1/ticketing-sources/ops-generic/", {"approved_statuses": ["ok"], "enabled": True}),
    ("post", "/api/v1/ticketing-sources/ops-generic/rotate-secret/", {"overlap_seconds": 60}),
    ("post", "/api/v1/gateway-services/{pending}/approve/", {"comment": "fine"}),
    ("post", "/api/v1/gateway-services/{pending}/reject/", {"comment": "no"}),
]
PLATFORM_CASES = [(m, p, body, (name,)) for m, p, body in PLATFORM_WRITES for name in body]
PLATFORM_CASES += [("post", "/api/v1/clusters/", CLUSTER, ("labels", "env"))]


@pytest.mark.parametrize(
    ("method", "target", "base", "path"),
    PLATFORM_CASES,
    ids=[f"{m}:{p}:{'.'.join(f)}" for m, p, _, f in PLATFORM_CASES],
)
def test_platform_writes_refuse_wrong_types(world, method, target, base, path):
    target = target.format(pending=world["pending"])

    @SETTINGS
    @example(["x"])
    @example({"x": 1})
    @given(WRONG)
    def attack(value):
        _check(_send(world["platform"], method, target, _replace(base, path, value)), path)

    attack()


@pytest.mark.parametrize("path", [("event",), ("ticket",), ("actor",), ("comment",), ("gateway_service",)])
def test_generic_webhook_refuses_wrong_types(world, path):
    from django.test import Client

    base = {
        "event": "ticket.created",
        "ticket": "OPS-9",
        "actor": "ops",
        "comment": "ok",
        "gateway_service": http_service(name="filed"),
    }
    counter = iter(range(10_000))

    @SETTINGS
    @example(["x"])
    @given(WRONG)
    def attack(value):
        body = json.dumps(_replace(base, path, value)).encode()
        headers = standard_headers(GENERIC_SECRET, f"msg_{next(counter)}", body)
        client = Client(raise_request_exception=False)
        with transaction.atomic():
            answer = client.post(url("ops-generic"), data=body, content_type="application/json", headers=headers)
            transaction.set_rollback(True)
        assert answer.status_code < 500, (path, answer.status_code, answer.content[:300])

    attack()
