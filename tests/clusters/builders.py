"""Build clusters and services straight through the ORM (the services actions are exercised elsewhere)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from clusters.models import Cluster
from services.actions import render_revision
from services.models import GatewayService, GatewayServiceRevision, Team
from tests.certs import make_cert
from tests.factories import service_spec


def sim_cluster(sim: Any, name: str, **fields: Any) -> Cluster:
    """A cluster pointing at a running kubesim with its token."""
    fields.setdefault("labels", {})
    return Cluster.objects.create(name=name, api_server=sim.url, token=sim.token, ca_cert=sim.ca_pem or "", **fields)


def team(slug: str = "payments") -> Team:
    return Team.objects.get_or_create(
        slug=slug, defaults={"name": slug.title(), "namespaces": [slug], "allowed_domains": [f"{slug}.example.com"]}
    )[0]


def spec(name: str = "checkout", **overrides: Any) -> dict[str, Any]:
    return service_spec(name, **overrides)


def tls_material(host: str) -> dict[str, Any]:
    leaf = make_cert(dns_names=[host])
    return {"cert": leaf.cert_pem, "key": leaf.key_pem, "ca_cert": None}


def make_service(
    name: str = "checkout",
    *,
    material: dict[str, Any] | None = None,
    approval: str = "not_required",
    **overrides: Any,
) -> GatewayService:
    value = spec(name, **overrides)
    service = GatewayService.objects.create(
        name=name, team=team(), namespace=value["namespace"], traffic_type=value["traffic_type"]
    )
    add_revision(service, value, material=material, approval=approval)
    return service


def add_revision(
    service: GatewayService,
    value: dict[str, Any],
    *,
    material: dict[str, Any] | None = None,
    approval: str = "not_required",
    render: bool = True,
) -> GatewayServiceRevision:
    number = service.revisions.count() + 1
    revision = GatewayServiceRevision(
        service=service, number=number, spec=value, tls_material=material, approval=approval
    )
    if render:
        render_revision(revision)  # as services.actions does when it writes a revision
    revision.save()
    service.current_revision = revision
    if approval in ("approved", "not_required"):
        service.approved_revision = revision
    service.save()
    return revision


def tls_service(name: str = "shop", mode: str = "SIMPLE", **overrides: Any) -> GatewayService:
    host = f"{name}.payments.example.com"
    overrides.setdefault("port", 443)
    overrides.setdefault("protocol", "HTTPS")
    return make_service(
        name, mode=mode, tls_options={"tls_secret": {}}, hosts=[host], material=tls_material(host), **overrides
    )


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    """Poll until `condition()` is truthy; fail the test (not a timing assertion) if it never becomes so."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)
