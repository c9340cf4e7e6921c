"""A small multi-tenant world for the hostile-input suites: two teams, their services, clusters, a ticketing source.

Everything is created through the API (as a platform engineer), so the objects are exactly what clients get.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit.models import AuditEvent
from tests.certs import make_ca, make_cert
from tests.factories import api_client, api_token, http_service, make_team, make_user

MEMBER = "alice"
OTHER_MEMBER = "bob"
PLATFORM = "root"


@dataclass
class World:
    """Names and ids of what `build_world` created; `secrets` holds every piece of key material handed in."""

    member_token: str
    platform_token: str
    own_service: str
    other_service: str
    own_team: str = "payments"
    other_team: str = "ledger"
    cluster: str = "prod-eu-1"
    ticketing_source: str = "jira-ledger"
    other_audit_event: int = 0
    secrets: dict[str, str] = field(default_factory=dict)


def build_world() -> World:
    """Needs database access. The member sees team `payments`; team `ledger` is someone else's."""
    member, other, platform = make_user(MEMBER), make_user(OTHER_MEMBER), make_user(PLATFORM, platform=True)
    make_team("payments", members=[member], allow_wildcards=True)
    make_team("ledger", members=[other])
    root = api_client(platform)
    token = "fuzz-cluster-token-9b1f0c2e7d"
    _created(
        root.post(
            "/api/v1/clusters/",
            {"name": "prod-eu-1", "api_server": "https://127.0.0.1:1", "token": token, "labels": {"env": "prod"}},
            format="json",
        )
    )
    own = _created(root.post("/api/v1/gateway-services/", http_service(team="payments"), format="json"))
    other_tls = _tls_service(team="ledger", namespace="ledger", host="pay.ledger.example.com")
    other_service = _created(root.post("/api/v1/gateway-services/", other_tls.payload, format="json"))
    source = _created(
        root.post(
            "/api/v1/ticketing-sources/", {"name": "jira-ledger", "kind": "jira", "team": "ledger"}, format="json"
        )
    )
    event = AuditEvent.objects.filter(team="ledger").order_by("-id").first()
    return World(
        member_token=api_token(member),
        platform_token=api_token(platform),
        own_service=own["id"],
        other_service=other_service["id"],
        other_audit_event=event.pk if event else 0,
        secrets={"cluster token": token, "webhook secret": source["secret"], **other_tls.secrets},
    )


@dataclass
class TLSService:
    payload: dict[str, Any]
    secrets: dict[str, str]


def _tls_service(*, team: str, namespace: str, host: str) -> TLSService:
    """A MUTUAL HTTPS service with a generated key and CA: the key material a leak scan looks for."""
    ca = make_ca()
    leaf = make_cert(dns_names=[host], issuer=ca)
    payload = http_service(
        team=team,
        name="secure",
        namespace=namespace,
        hosts=[host],
        port=443,
        protocol="HTTPS",
        mode="MUTUAL",
        tls_options={"tls_secret": {"cert": leaf.cert_pem, "key": leaf.key_pem, "ca_cert": ca.cert_pem}},
    )
    return TLSService(payload=payload, secrets=key_lines(leaf.key_pem, label=f"{host} key"))


def key_lines(pem: str, *, label: str) -> dict[str, str]:
    """The base64 body lines of a PEM key: any one of them found anywhere is a leak."""
    body = [line for line in pem.strip().splitlines() if line and not line.startswith("-----")]
    return {f"{label} line {i}": line for i, line in enumerate(body) if len(line) >= 16}


def _created(response) -> dict[str, Any]:
    assert response.status_code == 201, (response.status_code, getattr(response, "data", response.content))
    return response.json()
