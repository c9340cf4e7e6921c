"""Small factories for tests: plain functions with sensible defaults."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from clusters.models import Cluster
from gatewayportal import apitokens
from services.models import Team

User = get_user_model()


def make_user(username: str = "alice", *, platform: bool = False) -> Any:
    user = User.objects.create_user(username=username, password="pw-" + username, is_staff=platform)
    return user


def make_team(
    slug: str = "payments",
    *,
    members: list | None = None,
    namespaces: list[str] | None = None,
    domains: list[str] | None = None,
    allow_wildcards: bool = False,
) -> Team:
    team = Team.objects.create(
        slug=slug,
        name=slug.title(),
        namespaces=namespaces or [slug],
        allowed_domains=domains or [f"{slug}.example.com"],
        allow_wildcards=allow_wildcards,
    )
    team.members.set(members or [])
    return team


def make_cluster(name: str = "prod-eu-1", **fields: Any) -> Cluster:
    fields.setdefault("labels", {"env": "prod"})
    fields.setdefault("api_server", "https://127.0.0.1:1")
    return Cluster.objects.create(name=name, **fields)


def api_token(user, name: str = "tests") -> str:
    """A new API token of the user (the key, which only exists in the caller's hands)."""
    return apitokens.issue(user=user, name=name, expires_at=None)[1]


def api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client


def http_service(**overrides: Any) -> dict[str, Any]:
    payload = {
        "name": "checkout",
        "namespace": "payments",
        "hosts": ["checkout.payments.example.com"],
        "port": 80,
        "protocol": "HTTP",
        "traffic_type": "ingress",
        "clusters": ["prod-eu-1"],
    }
    payload.update(overrides)
    return payload


def service_spec(name: str = "checkout", **overrides: Any) -> dict[str, Any]:
    """A stored revision spec (the internal, normalised form), plain HTTP on port 80 unless told otherwise."""
    value = {
        "name": name,
        "namespace": "payments",
        "traffic_type": "ingress",
        "hosts": [f"{name}.payments.example.com"],
        "port": 80,
        "protocol": "HTTP",
        "mode": None,
        "tls_options": {},
        "https_redirect": False,
        "min_protocol_version": None,
        "max_protocol_version": None,
        "clusters": [],
        "cluster_selector": None,
        "ticket": "",
    }
    value.update(overrides)
    return value
