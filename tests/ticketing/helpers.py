"""Helpers for the ticketing tests: ORM-built pending revisions and senders that sign like the real systems."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from django.test import Client

from services.choices import Approval
from services.models import GatewayService, GatewayServiceRevision
from tests.factories import service_spec

PAYLOADS = Path(__file__).resolve().parent / "payloads"
GENERIC_SECRET = "whsec_" + base64.b64encode(b"generic-secret-bytes-for-tests!!").decode()
JIRA_SECRET = "jira-webhook-secret-0123456789"
SERVICENOW_TOKEN = "servicenow-bearer-token-0123456789"


def make_pending_revision(team, *, ticket: str = "OPS-123", name: str = "checkout") -> GatewayServiceRevision:
    """A service whose only revision waits for approval on a gated cluster (built with the ORM)."""
    spec = service_spec(
        name,
        namespace=team.namespaces[0],
        hosts=[f"{name}.{team.allowed_domains[0]}"],
        clusters=["prod-eu-1"],
        ticket=ticket,
    )
    service = GatewayService.objects.create(
        name=name, team=team, namespace=spec["namespace"], traffic_type="ingress", created_by="alice"
    )
    revision = GatewayServiceRevision.objects.create(
        service=service, number=1, spec=spec, approval=Approval.PENDING, author="alice", ticket=ticket
    )
    service.current_revision = revision
    service.save(update_fields=["current_revision"])
    return revision


def url(source: str) -> str:
    return f"/api/v1/webhooks/ticketing/{source}/"


def standard_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers, signed by hand as the spec says: base64 HMAC-SHA256 of `id.timestamp.body`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def post_generic(
    source: str, payload: dict[str, Any], *, msg_id: str = "msg_1", secret: str = GENERIC_SECRET, **kw: Any
):
    body = json.dumps(payload).encode()
    headers = standard_headers(secret, msg_id, body, kw.pop("timestamp", None))
    return Client().post(url(source), data=body, content_type="application/json", headers=headers)


def jira_body(sample: str, **changes: Any) -> bytes:
    payload = json.loads((PAYLOADS / sample).read_text())
    payload["timestamp"] = int(time.time() * 1000)  # Jira's signed event time must be recent
    payload.update(changes)
    return json.dumps(payload).encode()


def post_jira(source: str, body: bytes, *, secret: str = JIRA_SECRET):
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return Client().post(
        url(source), data=body, content_type="application/json", headers={"X-Hub-Signature": signature}
    )


def servicenow_body(sample: str) -> bytes:
    return (PAYLOADS / sample).read_bytes()


def post_servicenow(source: str, body: bytes, *, token: str = SERVICENOW_TOKEN):
    headers = {"Authorization": f"Bearer {token}"}
    return Client().post(url(source), data=body, content_type="application/json", headers=headers)
