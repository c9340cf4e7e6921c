"""Istio Gateways through the real CustomObjectsApi: CRUD, patches, concurrency and schema validation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from kubesim import KubeSim

GROUP, NS, PLURAL = "networking.istio.io", "istio-system", "gateways"


def _error(call, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(client.ApiException) as caught:
        call(*args, **kwargs)
    return caught.value.status, json.loads(caught.value.body)


def _server(name: str, number: int = 8080, protocol: str = "HTTP", **extra: Any) -> dict[str, Any]:
    return {"port": {"number": number, "name": name, "protocol": protocol}, "hosts": ["app.example.com"], **extra}


def _gateway(name: str, servers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers},
    }


def test_get_returns_the_seeded_gateway_at_the_requested_version(custom: client.CustomObjectsApi) -> None:
    for version in ("v1", "v1beta1", "v1alpha3"):
        gateway = custom.get_namespaced_custom_object(GROUP, version, NS, PLURAL, "ingress-gateway")

        assert gateway["apiVersion"] == f"{GROUP}/{version}"
        assert gateway["spec"]["servers"] == [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
        ]
        assert gateway["metadata"]["generation"] == 1


def test_a_metadata_only_get_answers_the_gateways_metadata_without_its_servers(
    custom: client.CustomObjectsApi,
) -> None:
    full = custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway")
    accept = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json"

    partial = custom.get_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "ingress-gateway", _headers={"Accept": accept}
    )

    assert partial == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": full["metadata"]}
    assert (
        _error(custom.get_namespaced_custom_object, GROUP, "v1", NS, PLURAL, "nope", _headers={"Accept": accept})[0]
        == 404
    )


def test_list_holds_both_demo_gateways(custom: client.CustomObjectsApi) -> None:
    listing = custom.list_namespaced_custom_object(GROUP, "v1", NS, PLURAL)

    assert listing["kind"] == "GatewayList"
    assert [g["metadata"]["name"] for g in listing["items"]] == ["egress-gateway", "ingress-gateway"]


def test_create_sets_server_metadata_and_refuses_a_duplicate(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, _gateway("extra", [_server("web")]))

    metadata = created["metadata"]
    assert metadata["namespace"] == NS and metadata["uid"] and metadata["creationTimestamp"]
    assert metadata["generation"] == 1 and int(metadata["resourceVersion"]) > 0
    status, body = _error(
        custom.create_namespaced_custom_object, GROUP, "v1", NS, PLURAL, _gateway("extra", [_server("web")])
    )
    assert (status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'gateways.networking.istio.io "extra" already exists'


def test_replace_bumps_resource_version_and_generation(custom: client.CustomObjectsApi) -> None:
    gateway = custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway")
    gateway["spec"]["servers"].append(_server("team-web"))

    replaced = custom.replace_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway", gateway)

    assert int(replaced["metadata"]["resourceVersion"]) > int(gateway["metadata"]["resourceVersion"])
    assert replaced["metadata"]["generation"] == 2
    assert [s["port"]["name"] for s in replaced["spec"]["servers"]] == ["http", "team-web"]


def test_annotation_change_keeps_generation(custom: client.CustomObjectsApi) -> None:
    patched = custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "ingress-gateway", {"metadata": {"annotations": {"a": "b"}}}
    )

    assert patched["metadata"]["annotations"] == {"a": "b"}
    assert patched["metadata"]["generation"] == 1


def test_replace_with_stale_resource_version_is_a_conflict(custom: client.CustomObjectsApi) -> None:
    stale = custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway")
    custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "ingress-gateway", {"metadata": {"labels": {"x": "y"}}}
    )

    status, body = _error(custom.replace_namespaced_custom_object, GROUP, "v1", NS, PLURAL, "ingress-gateway", stale)

    assert status == 409
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on gateways.networking.istio.io "ingress-gateway": '
        "the object has been modified; please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "ingress-gateway", "group": GROUP, "kind": "gateways"},
        "code": 409,
    }


def test_replace_without_resource_version_is_refused_for_custom_resources(custom: client.CustomObjectsApi) -> None:
    status, body = _error(
        custom.replace_namespaced_custom_object,
        GROUP,
        "v1",
        NS,
        PLURAL,
        "ingress-gateway",
        _gateway("ingress-gateway", []),
    )

    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_merge_patch_with_stale_resource_version_is_a_conflict(custom: client.CustomObjectsApi) -> None:
    patch = {"metadata": {"resourceVersion": "1"}, "spec": {"servers": []}}

    status, body = _error(custom.patch_namespaced_custom_object, GROUP, "v1", NS, PLURAL, "ingress-gateway", patch)

    assert (status, body["reason"]) == (409, "Conflict")


def test_json_patch_adds_a_server_and_honours_test(custom: client.CustomObjectsApi, kubesim: KubeSim) -> None:
    current = custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway")
    operations = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": current["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/spec/servers/-", "value": _server("team-web")},
    ]

    patched = custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "ingress-gateway", operations, _content_type="application/json-patch+json"
    )
    status, body = _error(
        custom.patch_namespaced_custom_object,
        GROUP,
        "v1",
        NS,
        PLURAL,
        "ingress-gateway",
        operations,
        _content_type="application/json-patch+json",
    )

    assert [s["port"]["name"] for s in patched["spec"]["servers"]] == ["http", "team-web"]
    assert (status, body["reason"]) == (422, "Invalid")
    assert "test failed" in body["details"]["causes"][0]["message"]
    assert [r.content_type for r in kubesim.requests.writes("gateways", NS, "ingress-gateway")] == [
        "application/json-patch+json",
        "application/json-patch+json",
    ]


def test_delete_then_get_is_not_found(custom: client.CustomObjectsApi) -> None:
    deleted = custom.delete_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "egress-gateway")

    status, body = _error(custom.get_namespaced_custom_object, GROUP, "v1", NS, PLURAL, "egress-gateway")
    assert deleted["status"] == "Success"
    assert (status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'gateways.networking.istio.io "egress-gateway" not found'


def test_missing_port_number_is_required(custom: client.CustomObjectsApi) -> None:
    server = {"port": {"name": "web", "protocol": "HTTP"}, "hosts": ["a.example.com"]}

    status, body = _error(custom.create_namespaced_custom_object, GROUP, "v1", NS, PLURAL, _gateway("bad", [server]))

    assert (status, body["reason"]) == (422, "Invalid")
    assert (
        body["message"] == 'Gateway.networking.istio.io "bad" is invalid: spec.servers[0].port.number: Required value'
    )
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.servers[0].port.number"}
    ]


def test_lowercase_tls_mode_is_not_supported(custom: client.CustomObjectsApi) -> None:
    server = _server("https", 443, "HTTPS", tls={"mode": "simple", "credentialName": "cert"})

    status, body = _error(custom.create_namespaced_custom_object, GROUP, "v1", NS, PLURAL, _gateway("bad", [server]))

    cause = body["details"]["causes"][0]
    assert (status, cause["reason"], cause["field"]) == (422, "FieldValueNotSupported", "spec.servers[0].tls.mode")
    assert cause["message"].startswith('Unsupported value: "simple": supported values: "PASSTHROUGH", "SIMPLE"')


def test_port_number_out_of_uint32_and_wrong_type(custom: client.CustomObjectsApi) -> None:
    servers = [_server("a", 4294967296), _server("b", "80")]

    _, body = _error(custom.create_namespaced_custom_object, GROUP, "v1", NS, PLURAL, _gateway("bad", servers))

    causes = {c["field"]: c["reason"] for c in body["details"]["causes"]}
    assert causes == {
        "spec.servers[0].port.number": "FieldValueInvalid",
        "spec.servers[1].port.number": "FieldValueTypeInvalid",
    }


def test_cel_rule_refuses_two_certificate_sources(custom: client.CustomObjectsApi) -> None:
    server = _server("https", 443, "HTTPS", tls={"mode": "SIMPLE", "credentialName": "a", "credentialNames": ["b"]})

    _, body = _error(custom.create_namespaced_custom_object, GROUP, "v1", NS, PLURAL, _gateway("bad", [server]))

    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "object": only one of credentialName or credentialNames can be set',
            "field": "spec.servers[0].tls",
        }
    ]


def test_unknown_fields_are_pruned(custom: client.CustomObjectsApi) -> None:
    gateway = _gateway("pruned", [{**_server("web"), "colour": "blue"}])
    gateway["spec"]["unknown"] = True

    created = custom.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, gateway)

    assert "unknown" not in created["spec"]
    assert created["spec"]["servers"] == [_server("web")]


def test_no_op_replace_keeps_resource_version(custom: client.CustomObjectsApi) -> None:
    gateway = custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway")

    replaced = custom.replace_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway", gateway)

    assert replaced["metadata"]["resourceVersion"] == gateway["metadata"]["resourceVersion"]


def test_create_in_missing_namespace_is_not_found(custom: client.CustomObjectsApi) -> None:
    status, body = _error(custom.create_namespaced_custom_object, GROUP, "v1", "nowhere", PLURAL, _gateway("g", []))

    assert (status, body["message"]) == (404, 'namespaces "nowhere" not found')


def test_same_object_written_through_another_version_is_a_no_op(custom: client.CustomObjectsApi) -> None:
    gateway = custom.get_namespaced_custom_object(GROUP, "v1beta1", NS, PLURAL, "ingress-gateway")

    replaced = custom.replace_namespaced_custom_object(GROUP, "v1beta1", NS, PLURAL, "ingress-gateway", gateway)

    assert replaced["apiVersion"] == f"{GROUP}/v1beta1"
    assert replaced["metadata"]["resourceVersion"] == gateway["metadata"]["resourceVersion"]


def test_body_api_version_must_match_the_url(custom: client.CustomObjectsApi) -> None:
    gateway = custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway")

    status, body = _error(
        custom.replace_namespaced_custom_object, GROUP, "v1alpha3", NS, PLURAL, "ingress-gateway", gateway
    )

    assert (status, body["reason"]) == (400, "BadRequest")
    assert "does not match the expected API version (networking.istio.io/v1alpha3)" in body["message"]
