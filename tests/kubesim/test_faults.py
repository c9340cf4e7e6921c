"""Fault injection, the concurrent writer, the request log and the admin endpoint."""

from __future__ import annotations

import json
import urllib.request

import pytest
import urllib3
from kubernetes import client

from kubesim import KubeSim

GROUP, NS = "networking.istio.io", "istio-system"
GATEWAY_PATH = f"/apis/{GROUP}/v1/namespaces/{NS}/gateways"


def _admin(sim: KubeSim, method: str, action: str, payload: dict | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(f"{sim.url}/_kubesim/{action}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _get_gateway(custom: client.CustomObjectsApi) -> dict:
    return custom.get_namespaced_custom_object(GROUP, "v1", NS, "gateways", "ingress-gateway")


def test_fail_next_answers_a_status_then_recovers(kubesim: KubeSim, custom: client.CustomObjectsApi) -> None:
    kubesim.faults.fail_next(2, status=503, method="GET", path_prefix=GATEWAY_PATH)

    statuses = []
    for _ in range(2):
        with pytest.raises(client.ApiException) as caught:
            _get_gateway(custom)
        statuses.append((caught.value.status, json.loads(caught.value.body)["reason"]))

    assert statuses == [(503, "ServiceUnavailable")] * 2
    assert _get_gateway(custom)["metadata"]["name"] == "ingress-gateway"


def test_failures_only_hit_matching_requests(kubesim: KubeSim, core: client.CoreV1Api, custom) -> None:
    kubesim.faults.fail_next(1, status=500, method="PUT")

    assert core.read_namespace("demo").metadata.name == "demo"
    gateway = _get_gateway(custom)
    with pytest.raises(client.ApiException) as caught:
        custom.replace_namespaced_custom_object(GROUP, "v1", NS, "gateways", "ingress-gateway", gateway)
    assert (caught.value.status, json.loads(caught.value.body)["reason"]) == (500, "InternalError")


def test_dropped_connection_reaches_the_client_as_a_protocol_error(kubesim: KubeSim, custom) -> None:
    kubesim.faults.drop_next(1)

    with pytest.raises(urllib3.exceptions.MaxRetryError) as caught:
        _get_gateway(custom)

    assert isinstance(caught.value.reason, urllib3.exceptions.ProtocolError)
    assert kubesim.requests.all()[-1].status == 0
    assert _get_gateway(custom)["metadata"]["name"] == "ingress-gateway"


def test_down_refuses_everything_until_brought_back(kubesim: KubeSim, custom) -> None:
    _admin(kubesim, "POST", "faults", {"down": True})

    with pytest.raises(urllib3.exceptions.MaxRetryError):
        _get_gateway(custom)
    _admin(kubesim, "DELETE", "faults")

    assert _get_gateway(custom)["metadata"]["name"] == "ingress-gateway"


def test_latency_still_answers(kubesim: KubeSim, custom) -> None:
    kubesim.faults.latency = 0.01

    assert _get_gateway(custom)["metadata"]["name"] == "ingress-gateway"


def test_concurrent_writer_makes_a_stale_replace_conflict(kubesim: KubeSim, custom) -> None:
    stale = _get_gateway(custom)
    writer = kubesim.start_writer(NS, "ingress-gateway", interval_ms=5, mode="server")
    assert writer.wait(writes=2)
    writer.stop()

    with pytest.raises(client.ApiException) as caught:
        custom.replace_namespaced_custom_object(GROUP, "v1", NS, "gateways", "ingress-gateway", stale)

    assert caught.value.status == 409
    names = [s["port"]["name"] for s in _get_gateway(custom)["spec"]["servers"]]
    assert names == ["http", "kubesim-writer"]


def test_request_log_counts_gateway_writes_and_admin_reads_it(kubesim: KubeSim, custom) -> None:
    kubesim.requests.reset()
    custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, "gateways", "ingress-gateway", {"metadata": {"labels": {"a": "b"}}}
    )
    _get_gateway(custom)

    logged = _admin(kubesim, "GET", "requests")["items"]

    assert kubesim.requests.gateway_writes(NS, "ingress-gateway") == 1
    assert kubesim.requests.gateway_writes(NS, "egress-gateway") == 0
    assert [(r["method"], r["status"], r["content_type"]) for r in logged] == [
        ("PATCH", 200, "application/merge-patch+json"),
        ("GET", 200, ""),
    ]
    assert _admin(kubesim, "DELETE", "requests") == {"items": []}


def test_admin_fail_setting_reaches_api_requests(kubesim: KubeSim, custom) -> None:
    described = _admin(kubesim, "POST", "faults", {"fail": {"count": 1, "status": 500}})

    with pytest.raises(client.ApiException) as caught:
        _get_gateway(custom)

    assert described["fail"][0]["remaining"] == 1
    assert caught.value.status == 500


def test_admin_refuses_unknown_settings(kubesim: KubeSim) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        _admin(kubesim, "POST", "faults", {"explode": True})

    assert caught.value.code == 400
    assert "accepted: latency, down, fail, drop" in json.loads(caught.value.read())["error"]
