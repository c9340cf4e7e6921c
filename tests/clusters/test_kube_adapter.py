"""The thin Kubernetes adapter's serialization: plain bodies are sent as they are, model objects still converted."""

from __future__ import annotations

import datetime

from kubernetes import client as k8s

from clusters.kube import Credentials, build_client


def _api_client():
    return build_client(Credentials(api_server="https://127.0.0.1:1")).api_client


def test_a_plain_json_body_is_sent_as_it_is():
    body = {"metadata": {"name": "gw"}, "spec": {"servers": [{"port": {"number": 80}, "hosts": ["*"]}]}}
    assert _api_client().sanitize_for_serialization(body) is body


def test_a_body_holding_model_objects_or_other_values_is_still_converted():
    api = _api_client()
    meta = k8s.V1ObjectMeta(name="s", namespace="istio-system")
    expected = {"metadata": {"name": "s", "namespace": "istio-system"}}
    assert api.sanitize_for_serialization({"metadata": meta}) == expected
    when = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    assert api.sanitize_for_serialization([when]) == ["2026-01-02T00:00:00+00:00"]
    secret = k8s.V1Secret(metadata=meta, type="Opaque")
    assert api.sanitize_for_serialization(secret)["type"] == "Opaque"
