"""The operator's GatewayService CRD under both API groups, through the real CustomObjectsApi."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from kubesim import KubeSim

GROUPS = ("gatewayservice.xunholy.github.com", "crd.xunholy.github.com")
VERSION, PLURAL, NS = "v1alpha1", "gatewayservices", "istio-system"

SPEC = {
    "hosts": ["*.example.com"],
    "port": 443,
    "protocol": "HTTPS",
    "mode": "SIMPLE",
    "trafficType": "ingress",
    "httpsRedirect": True,
    "minProtocolVersion": "TLSV1_2",
    "tlsOptions": {"tlsSecretRef": {"secretName": "example-secret-ref"}},
}


@pytest.mark.parametrize("group", GROUPS)
def test_both_groups_hold_operator_resources_with_every_field(custom: client.CustomObjectsApi, group: str) -> None:
    body = {"apiVersion": f"{group}/{VERSION}", "kind": "GatewayService", "metadata": {"name": "ref"}, "spec": SPEC}
    custom.create_namespaced_custom_object(group, VERSION, NS, PLURAL, body)

    listed = custom.list_namespaced_custom_object(group, VERSION, NS, PLURAL)

    assert [item["spec"] for item in listed["items"]] == [SPEC]
    assert listed["items"][0]["apiVersion"] == f"{group}/{VERSION}"


def test_the_groups_are_separate_stores(kubesim: KubeSim, custom: client.CustomObjectsApi) -> None:
    kubesim.store.add_operator_service(NS, "only-old", SPEC, group=GROUPS[0])

    assert custom.list_cluster_custom_object(GROUPS[1], VERSION, PLURAL)["items"] == []
    assert [i["metadata"]["name"] for i in custom.list_cluster_custom_object(GROUPS[0], VERSION, PLURAL)["items"]] == [
        "only-old"
    ]


def test_the_crd_schema_refuses_a_bad_enum(custom: client.CustomObjectsApi) -> None:
    body = {"metadata": {"name": "bad"}, "spec": {**SPEC, "trafficType": "sideways"}}
    with pytest.raises(client.ApiException) as caught:
        custom.create_namespaced_custom_object(GROUPS[1], VERSION, NS, PLURAL, body)

    assert caught.value.status == 422
    assert "spec.trafficType" in json.dumps(json.loads(caught.value.body))


def test_discovery_lists_both_groups(api: client.ApiClient) -> None:
    names = [g.name for g in client.ApisApi(api).get_api_versions().groups]

    assert set(GROUPS) <= set(names)
