"""Property: a refusal stays with the blocks that caused it (`clusters.converge._isolate_refusal`, no database).

A fake API server refuses any Gateway carrying a denied host (like Istio's webhook with kubesim's deny_hosts).
Whatever the denied blocks (new ones, or ones already live when the cluster's rules changed), they are exactly
the blocks left out (or, past the write budget, among them), every other block is written, and the writes stay
within the budget.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clusters import kube
from clusters.converge import _isolate_refusal
from clusters.reconcile import DesiredService, Facts, plan_gateway, server_name
from services.rendering import GatewaySettings
from tests.factories import service_spec

SETTINGS = GatewaySettings()
PLATFORM = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}


class FakeServer:
    def __init__(self, live: dict[str, Any], denied: set[str]) -> None:
        self.live, self.denied, self.writes = live, denied, 0

    def replace_gateway(self, body: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        hosts = [h.rpartition("/")[2] for s in body["spec"]["servers"] for h in s["hosts"]]
        bad = [h for h in hosts if h in self.denied]
        if bad:
            raise kube.PermanentError(
                f'writing Gateway: 400 : admission webhook "validation.istio.io" denied the request: {bad}',
                status=400,
            )
        self.live = copy.deepcopy(body)
        self.live["metadata"]["resourceVersion"] = str(int(self.live["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(self.live)


def _gateway(servers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "ingress-gateway", "namespace": "istio-system", "resourceVersion": "1"},
        "spec": {"servers": servers},
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 24),
    data=st.data(),
)
def test_a_refusal_stays_with_the_blocks_that_caused_it(count, data):
    items = [
        DesiredService(f"s{i}", "payments", 1, service_spec(f"svc{i}", hosts=[f"svc{i}.payments.example.com"]))
        for i in range(count)
    ]
    already_live = data.draw(st.sets(st.integers(0, count - 1)), label="already live")
    denied_idx = data.draw(st.sets(st.integers(0, count - 1), min_size=1, max_size=min(count, 4)), label="denied")
    # The live Gateway: the platform's server and the blocks written before the cluster's rules changed.
    first = plan_gateway(
        live=_gateway([PLATFORM]),
        desired=[items[i] for i in sorted(already_live)],
        settings=SETTINGS,
        facts=Facts(),
    )
    live = first.gateway or _gateway([PLATFORM])
    server = FakeServer(live, {f"svc{i}.payments.example.com" for i in denied_idx})
    facts = Facts(recorded_servers=frozenset(first.managed_names))
    plan = plan_gateway(live=live, desired=items, settings=SETTINGS, facts=facts)
    assume(plan.gateway is not None)  # nothing to write: nothing is refused
    try:
        server.replace_gateway(plan.gateway)
    except kube.PermanentError as refusal:
        server.writes = 0
        excluded: dict = {}
        final, written = _isolate_refusal(server, refusal, live, items, SETTINGS, facts, excluded)
    else:
        raise AssertionError("the fake server accepted a denied host")

    denied = {f"s{i}" for i in denied_idx}
    rejected = {sid for sid, o in final.outcomes.items() if o.state == "rejected"}
    assert denied <= rejected
    budget = 4 * math.ceil(math.log2(count + 1)) + 4
    for sid in rejected - denied:
        assert f"once {budget} writes had not isolated the cause" in final.outcomes[sid].message
    if len(denied) <= 2:
        assert rejected == denied
    names = {server_name(s) for s in written["spec"]["servers"]}
    assert names == {"http"} | {f"http-svc{i}-payments" for i in range(count) if f"s{i}" not in rejected}
    assert server.writes <= budget + 1
    for sid in denied:
        assert "denied the request" in final.outcomes[sid].message
