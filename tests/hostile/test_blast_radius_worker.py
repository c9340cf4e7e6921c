"""A shared gateway survives its tenants, the worker's half: each test is one attack and fails on the old code.

- a host with a newline slipped past the `$`-anchored checks (full-string matches now);
- one refused block stalled every team's changes on the gateway (refusals stay with their blocks);
- removing the last service planned `servers: []`, which Istio's webhook refuses (a placeholder server);
- one team's growth froze the gateway for everyone (the newest blocks are left out);
- a Secret written in a round whose Gateway write failed stayed on the cluster forever (recorded first).
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.api import serializers as api_serializers
from services.validation import hosts as host_rules
from services.validation import spec as spec_rules
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

PROPERTIES = settings(max_examples=400, deadline=None)

# Control characters and whitespace, ASCII and beyond: none may ever reach a Gateway or a Secret name.
BAD_CHARS = st.characters(categories=("Cc", "Cf", "Zs", "Zl", "Zp")) | st.sampled_from(
    ["\n", "\r", "\t", " ", "\x0b", "\x0c", "\x00", "\x85", "\u2028"]
)
VALID_HOSTS = st.sampled_from(
    ["app.demo.example.com", "*.example.com", "payments/app.example.com", "*", "10.0.0.1", "istio.io.", "a-b.c-d.org"]
)
VALID_LABELS = st.sampled_from(["payments", "a", "shop-2", "x1y", "checkout"])
VALID_SECRET_NAMES = st.sampled_from(["shop-payments-secret", "a.b-c", "x"])
VALID_REFS = st.sampled_from(["istio-system/ingress-gateway", "a/b"])


def _is_bad(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("C") or unicodedata.category(char)[0] == "Z"


def _spliced(draw, valid: st.SearchStrategy[str]) -> str:
    """A valid value with one control or whitespace character put anywhere in it (start, middle or end)."""
    value = draw(valid)
    at = draw(st.integers(0, len(value)))
    return value[:at] + draw(BAD_CHARS) + value[at:]


def _label_accepted(value: str) -> bool:
    errors: dict = {}
    spec_rules._check_identity({"name": value, "namespace": value, "port": 80, "traffic_type": "ingress"}, errors)
    return not errors


ACCEPTORS = {
    "gateway host": lambda v: host_rules.istio_host_problem(v) is None,
    "service host": lambda v: spec_rules.portal_host_problem(v) is None,
    "dns label (hosts, namespaces in hosts)": host_rules.is_dns1123_label,
    "service name and namespace": _label_accepted,
    "secret name": lambda v: spec_rules._secret_ref_errors({"secret_name": v}, "SIMPLE", False) == {},
    "api: team slug, namespaces, service name": lambda v: re.search(api_serializers.DNS_LABEL, v) is not None,
    "api: team domain": lambda v: api_serializers.DOMAIN.fullmatch(v) is not None,
}


def _cluster_gateway_ref_accepted(value: str) -> bool:
    from clusters.actions import _GATEWAY_REF

    return _GATEWAY_REF.fullmatch(value) is not None


@PROPERTIES
@given(st.data())
def test_no_value_a_validator_accepts_contains_a_control_character_or_whitespace(data):
    """Near-valid strings (one bad character spliced in) and arbitrary text: anything accepted is clean."""
    sources = {
        "gateway host": VALID_HOSTS,
        "service host": VALID_HOSTS,
        "dns label (hosts, namespaces in hosts)": VALID_LABELS,
        "service name and namespace": VALID_LABELS,
        "secret name": VALID_SECRET_NAMES,
        "api: team slug, namespaces, service name": VALID_LABELS,
        "api: team domain": st.sampled_from(["example.com", "payments.example.com"]),
    }
    for what, accepts in [*ACCEPTORS.items(), ("cluster gateway ref", _cluster_gateway_ref_accepted)]:
        valid = sources.get(what, VALID_REFS)
        for value in (data.draw(st.builds(lambda d=data, v=valid: _spliced(d.draw, v))), data.draw(st.text())):
            if accepts(value):
                assert not any(_is_bad(c) for c in value), f"{what} accepted {value!r}"


@pytest.mark.django_db
def test_a_host_with_a_newline_is_a_400_naming_hosts():
    user = make_user("alice")
    make_team("payments", members=[user], domains=["demo.example.com"])
    make_cluster("prod-eu-1")
    client = api_client(user)

    response = client.post("/api/v1/gateway-services/", http_service(hosts=["app\n.demo.example.com"]), format="json")

    assert response.status_code == 400, response.content
    assert "label 'app\n' of 'app\n.demo.example.com' is invalid" in response.json()["hosts"][0]
