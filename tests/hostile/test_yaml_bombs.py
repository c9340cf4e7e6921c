"""YAML alias bombs and other unbounded documents: refused with a 400 (or exit 2) naming the limit.

The bomb is a few hundred bytes whose aliases expand to 10^9 nodes the moment anything walks the tree.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from gatewayportal import yamlsafe
from services.models import GatewayService
from tests.factories import api_client, make_cluster, make_team, make_user
from ticketing import parsers

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).resolve().parents[1] / "ticketing" / "payloads"


def bomb(levels: int = 9, *, indent: str = "") -> str:
    """`levels` lines of ten aliases each: 10^levels leaves once expanded."""
    lines = [f'{indent}a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"{indent}a{i}: &a{i} [{refs}]")
    return "\n".join(lines)


def import_document(extra: str) -> str:
    return (
        "apiVersion: gatewayservice.xunholy.github.com/v1alpha1\n"
        "kind: GatewayService\n"
        "metadata:\n  name: checkout\n  namespace: payments\n  annotations:\n"
        f"{bomb(indent='    ')}\n"
        f"{extra}"
        "spec:\n  hosts: [checkout.payments.example.com]\n  port: 80\n  protocol: HTTP\n  trafficType: ingress\n"
    )


def test_alias_bomb_import_is_400_naming_aliases_and_creates_nothing():
    alice = make_user("alice")
    make_team("payments", members=[alice])
    make_cluster("prod-eu-1")
    client = api_client(alice)
    text = import_document("")
    assert len(text) < 1024
    response = client.post("/api/v1/gateway-services/import/?clusters=prod-eu-1", text, content_type="application/yaml")
    assert response.status_code == 400, response.content[:300]
    assert "aliases" in json.dumps(response.json())
    assert not GatewayService.objects.exists()


def test_jira_description_with_aliases_is_refused_with_the_reason():
    payload = json.loads((PAYLOADS / "jira_issue_created_request.json").read_text())
    payload["issue"]["fields"]["description"] = "{code:yaml}\nname: refunds\n" + bomb(3) + "\n{code}"
    event = parsers.parse_jira(payload, body=b"x", approved=["Approved"], rejected=["Declined"])
    assert event.gateway_service is None
    assert "aliases" in json.dumps(event.errors)


def test_validate_gateway_refuses_aliases_as_unreadable(tmp_path):
    path = tmp_path / "gw.yaml"
    path.write_text(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ingress}\n"
        "spec:\n  servers:\n  - port: &p {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n"
        "  - port: *p\n    hosts: ['a.example.com']\n"
    )
    with pytest.raises(CommandError) as raised:
        call_command("validate_gateway", str(path), stdout=io.StringIO())
    assert raised.value.returncode == 2
    assert "aliases" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        (bomb(9), "aliases"),
        ("a: 1\n" + "---\na: 1\n" * yamlsafe.MAX_DOCUMENTS, "documents"),
        ("[" * (yamlsafe.MAX_DEPTH + 1) + "]" * (yamlsafe.MAX_DEPTH + 1), "nesting"),
        ("a: " + "x" * yamlsafe.MAX_CHARS, "longer"),
    ],
)
def test_bounded_loader_names_each_limit(text, limit):
    with pytest.raises(yaml.YAMLError, match=limit):
        list(yamlsafe.load_all(text))
    with pytest.raises(yaml.YAMLError, match=limit):
        yamlsafe.load(text) if limit != "documents" else list(yamlsafe.load_all(text))


def test_bounded_loader_reads_ordinary_documents_like_safe_load():
    text = "a: 1\nb: [x, {c: true}]\n---\nname: two\n"
    assert list(yamlsafe.load_all(text)) == list(yaml.safe_load_all(text))
    assert yamlsafe.load("a: 2019-01-01") == yaml.safe_load("a: 2019-01-01")
