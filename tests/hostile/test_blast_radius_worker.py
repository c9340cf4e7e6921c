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


# --- Through the worker, against kubesim's emulation of Istio's validating webhook ------------------------------


def _other_team_service(name: str, **overrides):
    from services.models import GatewayService
    from tests.clusters.builders import add_revision, spec, team

    other = team("search")
    value = spec(name, namespace="search", hosts=[f"{name}.search.example.com"], **overrides)
    service = GatewayService.objects.create(name=name, team=other, namespace="search", traffic_type="ingress")
    add_revision(service, value)
    return service


def _live_names(kubesim, gateway="ingress-gateway"):
    return [s["port"]["name"] for s in kubesim.store.gateway("istio-system", gateway)["spec"]["servers"]]


@pytest.mark.django_db
def test_a_block_the_webhook_refuses_is_left_out_and_another_teams_block_lands_in_the_same_reconcile(kubesim):
    """Attack: one team's host the cluster refuses (here kubesim's deny_hosts) stalled every team's changes."""
    from clusters.converge import gateway_converge
    from services.models import GatewayServiceStatus
    from tests.clusters.builders import make_service, sim_cluster

    cluster = sim_cluster(kubesim, "c1")
    refused = make_service("refused", clusters=["c1"])
    others = [_other_team_service(f"fine{i}", clusters=["c1"]) for i in range(6)]
    kubesim.faults.deny_host("refused.payments.example.com")

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    assert "http-refused-payments" not in _live_names(kubesim)
    assert {f"http-fine{i}-search" for i in range(6)} <= set(_live_names(kubesim))
    for service in others:
        assert GatewayServiceStatus.objects.get(service=service, cluster=cluster).state == "applied"
    status = GatewayServiceStatus.objects.get(service=refused, cluster=cluster)
    assert status.state == "rejected"
    assert 'admission webhook "validation.istio.io" denied the request' in status.message
    assert "refused.payments.example.com" in status.message
    # Bounded: the refused write, then a bisection over 7 changed blocks.
    assert kubesim.requests.gateway_writes("istio-system", "ingress-gateway") <= 1 + 4 * 3 + 4
    # The other team's statuses never carry the refused team's host.
    assert not GatewayServiceStatus.objects.filter(message__contains="refused.payments").exclude(service=refused)


@pytest.mark.django_db
def test_a_block_refused_after_it_was_applied_does_not_blame_a_newcomer(kubesim):
    """The cluster's rules change under a running block: a new block of another team still lands."""
    from clusters.converge import gateway_converge
    from services.models import GatewayServiceStatus
    from tests.clusters.builders import make_service, sim_cluster

    cluster = sim_cluster(kubesim, "c1")
    old = make_service("old", clusters=["c1"])
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    kubesim.faults.deny_host("old.payments.example.com")
    newcomer = _other_team_service("newcomer", clusters=["c1"])

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    assert GatewayServiceStatus.objects.get(service=newcomer, cluster=cluster).state == "applied"
    assert GatewayServiceStatus.objects.get(service=old, cluster=cluster).state == "rejected"
    assert "old.payments" not in GatewayServiceStatus.objects.get(service=newcomer, cluster=cluster).message
    assert _live_names(kubesim) == ["http", "http-newcomer-search"]


@pytest.mark.django_db
def test_removing_the_last_service_of_a_gateway_completes_with_the_placeholder(kubesim):
    """Attack: an emptied Gateway planned `servers: []`, which Istio refuses: the removal never finished."""
    from clusters.converge import gateway_converge
    from services.actions import gateway_service_delete
    from services.models import GatewayService, GatewayServiceStatus
    from tests.clusters.builders import make_service, sim_cluster

    cluster = sim_cluster(kubesim, "c1")  # the demo egress Gateway has no platform server
    service = make_service("out", clusters=["c1"], traffic_type="egress")
    gateway_converge(cluster_id=cluster.pk, traffic_type="egress")
    assert _live_names(kubesim, "egress-gateway") == ["http-out-payments"]

    gateway_service_delete(service=service)
    gateway_converge(cluster_id=cluster.pk, traffic_type="egress")

    assert _live_names(kubesim, "egress-gateway") == ["http-gatewayportal-placeholder"]
    assert not GatewayServiceStatus.objects.filter(service_id=service.pk).exists()
    assert not GatewayService.objects.filter(pk=service.pk).exists()

    # The placeholder goes as soon as another server is there.
    make_service("back", clusters=["c1"], traffic_type="egress")
    gateway_converge(cluster_id=cluster.pk, traffic_type="egress")
    assert _live_names(kubesim, "egress-gateway") == ["http-back-payments"]


@pytest.mark.django_db
def test_one_team_past_the_size_limit_does_not_freeze_the_gateway(kubesim):
    """Attack: blocks pushed past 1 MiB made the planner write nothing; older blocks now run, newest wait."""
    from clusters.converge import gateway_converge
    from services.models import GatewayServiceStatus
    from tests.clusters.builders import make_service, sim_cluster

    cluster = sim_cluster(kubesim, "c1")
    victim = _other_team_service("victim", clusters=["c1"])
    hosts = lambda i: [f"h{j}-{'x' * 40}.s{i}.payments.example.com" for j in range(100)]  # noqa: E731
    bulky = [make_service(f"bulk{i}", clusters=["c1"], hosts=hosts(i)) for i in range(130)]

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    assert GatewayServiceStatus.objects.get(service=victim, cluster=cluster).state == "applied"
    assert "http-victim-search" in _live_names(kubesim)
    states = [GatewayServiceStatus.objects.get(service=s, cluster=cluster) for s in bulky]
    assert states[0].state == "applied"
    assert states[-1].state == "rejected" and "1 MiB" in states[-1].message


@pytest.mark.django_db
def test_a_secret_written_in_a_round_whose_gateway_write_fails_is_removed_with_its_service(kubesim):
    """Attack: a Secret created in a round whose Gateway write then failed for good was never recorded."""
    from clusters.converge import gateway_converge
    from services.actions import gateway_service_delete
    from tests.clusters.builders import sim_cluster, tls_service

    cluster = sim_cluster(kubesim, "c1")
    kubesim.faults.deny_host("*")  # the platform's own server is refused: nothing the portal can isolate
    service = tls_service("shop", clusters=["c1"])

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    assert kubesim.store.secret("istio-system", "shop-payments-secret") is not None

    kubesim.faults.clear()
    gateway_service_delete(service=service)
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    assert kubesim.store.secret("istio-system", "shop-payments-secret") is None


@pytest.mark.django_db
def test_two_refused_blocks_among_many_are_both_found_and_the_rest_is_written(kubesim):
    from clusters.converge import gateway_converge
    from services.models import GatewayServiceStatus
    from tests.clusters.builders import make_service, sim_cluster

    cluster = sim_cluster(kubesim, "c1")
    services = [make_service(f"svc{i}", clusters=["c1"]) for i in range(16)]
    kubesim.faults.deny_host("svc3.payments.example.com")
    kubesim.faults.deny_host("svc11.payments.example.com")

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    states = {s.name: GatewayServiceStatus.objects.get(service=s, cluster=cluster) for s in services}
    assert {name for name, status in states.items() if status.state == "rejected"} == {"svc3", "svc11"}
    assert "svc3.payments.example.com" in states["svc3"].message
    assert "svc11" not in states["svc3"].message
    assert set(_live_names(kubesim)) == {"http"} | {f"http-svc{i}-payments" for i in range(16) if i not in (3, 11)}
    assert kubesim.requests.gateway_writes("istio-system", "ingress-gateway") <= 1 + 4 * 5 + 4
