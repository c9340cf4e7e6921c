"""Secret leak scan: hand the portal private keys, cluster tokens, a kubeconfig and webhook secrets, then look for
them everywhere a user, an operator or a database reader could see: every API response (JSON and CSV), every log
line (DEBUG, SQL included, the JSON audit stream too), the audit table and the raw rows of every table the apps
own (encrypted columns included, read with raw SQL). The only places a secret may appear are the create and
rotate answers of a ticketing source, which show it once by contract.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from django.apps import apps
from django.db import connection
from rest_framework.test import APIClient

from audit.models import AuditEvent
from tests.certs import make_cert
from tests.factories import http_service
from tests.hostile.world import World, build_world, key_lines

APPS = ("services", "clusters", "audit", "ticketing")
LOGGERS = ("", "gatewayportal.audit", "django.db.backends")


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every line the configured handlers would write, at DEBUG, SQL statements with their parameters included."""
    output = io.StringIO()
    handlers = {h for name in LOGGERS for h in logging.getLogger(name).handlers if isinstance(h, logging.StreamHandler)}
    streams = {handler: handler.setStream(output) for handler in handlers}
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    connection.force_debug_cursor = True
    try:
        yield output
    finally:
        connection.force_debug_cursor = False
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for handler, stream in streams.items():
            handler.setStream(stream)


class Portal:
    """A client that keeps every answer it got, except the two that show a secret once by contract."""

    def __init__(self, token: str):
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        self.answers: list[tuple[str, bytes]] = []

    def call(self, method: str, path: str, data: Any = None, *, shows_secret: bool = False, **kwargs) -> Any:
        response = getattr(self.client, method)(path, data, **kwargs)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if not shows_secret:
            self.answers.append((f"{method.upper()} {path} -> {response.status_code}", body))
        return response


def test_no_secret_is_found_in_answers_logs_audit_or_raw_rows(db, settings, log_output):
    settings.KUBE_REQUEST_TIMEOUT_SECONDS = 0.5
    world = build_world()
    root, member = Portal(world.platform_token), Portal(world.member_token)
    secrets = dict(world.secrets)

    secrets |= _write_everything(root, member, world)
    _read_everything(root, world)
    _read_everything(member, world)

    places = {
        **{what: body for what, body in root.answers + member.answers},
        "log output": log_output.getvalue().encode(),
        "audit table": json.dumps(list(AuditEvent.objects.values()), default=str).encode(),
        **_raw_rows(),
    }
    hits = [(name, at) for name, value in secrets.items() for at, seen in places.items() if value.encode() in seen]
    assert hits == []
    # The scan saw what it should have: answers, log lines (SQL too), audit events and encrypted rows.
    assert len(root.answers) + len(member.answers) > 40
    assert "INSERT INTO" in log_output.getvalue() and "gateway_service.created" in log_output.getvalue()
    assert len(secrets) > 20


def _write_everything(root: Portal, member: Portal, world: World) -> dict[str, str]:
    """Every write path that carries key material: services with keys, bad keys, dry runs, updates, clusters
    with a token and a kubeconfig, secret rotation, a signed webhook delivery. Returns the secrets handed in."""
    leaf, other_leaf, wrong_leaf = (
        make_cert(dns_names=["shop.payments.example.com"]),
        make_cert(dns_names=["shop.payments.example.com"], key_type="ec"),
        make_cert(dns_names=["shop.payments.example.com"]),
    )
    secrets = {
        **key_lines(leaf.key_pem, label="shop key"),
        **key_lines(leaf.key_pem_pkcs1, label="shop key pkcs1"),
        **key_lines(other_leaf.key_pem, label="shop ec key"),
        **key_lines(wrong_leaf.key_pem, label="mismatched key"),
        "shop key base64": leaf.key_b64[:64],
        "ec key base64": other_leaf.key_b64[:64],
    }
    tls = {"tls_secret": {"cert": leaf.cert_pem, "key": leaf.key_pem_pkcs1}}
    simple = http_service(name="shop", hosts=["shop.payments.example.com"], port=443, protocol="HTTPS", mode="SIMPLE")
    member.call("post", "/api/v1/gateway-services/?dry_run=true", {**simple, "tls_options": tls}, format="json")
    bad = {"tls_secret": {"cert": leaf.cert_pem, "key": wrong_leaf.key_pem}}
    refused = member.call("post", "/api/v1/gateway-services/", {**simple, "tls_options": bad}, format="json")
    assert refused.status_code == 400
    created = member.call("post", "/api/v1/gateway-services/", {**simple, "tls_options": tls}, format="json")
    assert created.status_code == 201, created.content
    shop = f"/api/v1/gateway-services/{created.json()['id']}/"
    base64_tls = {"tls_secret": {"cert": other_leaf.cert_b64, "key": other_leaf.key_b64}}
    assert member.call("patch", shop, {"tls_options": base64_tls}, format="json").status_code == 200
    member.call("put", f"{shop}?dry_run=true", {**simple, "tls_options": tls}, format="json")

    secrets |= _clusters(root)
    secrets |= _ticketing(root, world)
    return secrets


def _clusters(root: Portal) -> dict[str, str]:
    token, kube_token = "tok-east-5f0c8a1d9e3b7c2a", "kubeconfig-token-0d9e8c7b6a5f4e3d"
    client = make_cert(dns_names=["portal"])
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "east",
        "clusters": [{"name": "east", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "east", "context": {"cluster": "east", "user": "portal"}}],
        "users": [{"name": "portal", "user": {"token": kube_token}}],
    }
    cert_config = yaml.safe_load(yaml.safe_dump(kubeconfig))
    cert_config["users"][0]["user"] = {
        "client-certificate-data": client.cert_b64,
        "client-key-data": client.key_b64,
    }
    with_token = {"name": "east-1", "api_server": "https://127.0.0.1:1", "token": token, "labels": {"env": "east"}}
    assert root.call("post", "/api/v1/clusters/", with_token, format="json").status_code == 201
    rotated = root.call("patch", "/api/v1/clusters/east-1/", {"token": token + "-rotated"}, format="json")
    assert rotated.status_code == 200
    payload = {"name": "east-2", "kubeconfig": yaml.safe_dump(kubeconfig)}
    assert root.call("post", "/api/v1/clusters/", payload, format="json").status_code == 201
    payload = {"name": "east-3", "kubeconfig": yaml.safe_dump(cert_config)}
    assert root.call("post", "/api/v1/clusters/", payload, format="json").status_code == 201
    root.call("post", "/api/v1/clusters/east-1/check/", format="json")
    return {
        "east token": token,
        "kubeconfig token": kube_token,
        "kubeconfig client key": client.key_b64[:64],
        **key_lines(client.key_pem, label="kubeconfig client key"),
    }


def _ticketing(root: Portal, world: World) -> dict[str, str]:
    path = f"/api/v1/ticketing-sources/{world.ticketing_source}/rotate-secret/"
    rotated = root.call("post", path, {"overlap_seconds": 60}, format="json", shows_secret=True).json()["secret"]
    chosen = "whsec_" + base64.b64encode(b"chosen-by-the-platform-team-32b!").decode()
    payload = {"name": "generic-payments", "kind": "generic", "team": "payments", "secret": chosen}
    assert root.call("post", "/api/v1/ticketing-sources/", payload, format="json", shows_secret=True).status_code == 201
    body = json.dumps({"issue": {"key": "OPS-1", "fields": {"status": {"name": "Approved"}}}}).encode()
    signature = "sha256=" + hmac.new(rotated.encode(), body, hashlib.sha256).hexdigest()
    root.client.credentials()  # the webhook is authenticated by its signature alone
    root.call(
        "post",
        f"/api/v1/webhooks/ticketing/{world.ticketing_source}/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE=signature,
    )
    root.client.credentials(HTTP_AUTHORIZATION=f"Token {world.platform_token}")
    return {"rotated webhook secret": rotated, "chosen webhook secret": chosen}


def _read_everything(portal: Portal, world: World) -> None:
    lists = [
        "/api/v1/gateway-services/",
        "/api/v1/teams/",
        "/api/v1/clusters/",
        "/api/v1/ticketing-sources/",
        "/api/v1/audit-events/?page_size=500",
        "/api/v1/audit-events/?format=csv",
        "/api/v1/reports/changes/",
        "/api/v1/reports/certificates/",
        "/api/v1/reports/audit-integrity/",
    ]
    for path in lists:
        answer = portal.call("get", path)
        for item in answer.json().get("results", []) if answer.get("Content-Type") == "application/json" else []:
            _read_detail(portal, path.split("?")[0], item)
    for name in ("prod-eu-1", "east-1"):
        portal.call("get", f"/api/v1/clusters/{name}/gateways/ingress/")


def _read_detail(portal: Portal, base: str, item: dict[str, Any]) -> None:
    key = item.get("id") or item.get("slug") or item.get("name")
    if key is None:
        return
    portal.call("get", f"{base}{key}/")
    if base.endswith("gateway-services/"):
        portal.call("get", f"{base}{key}/history/")


def _raw_rows() -> dict[str, bytes]:
    """Every row of every table the apps own, as Postgres stores it (no field decryption)."""
    rows: dict[str, bytes] = {}
    with connection.cursor() as cursor:
        for model in apps.get_models():
            if model._meta.app_label not in APPS:
                continue
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t")  # noqa: S608 -- table names from models
            rows[f"table {model._meta.db_table}"] = "\n".join(r[0] for r in cursor.fetchall()).encode()
    assert rows["table services_gatewayservicerevision"], "the scan must see the encrypted key column"
    return rows
