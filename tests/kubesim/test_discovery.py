"""Discovery documents deserialise into the real client's strict models."""

from __future__ import annotations

from kubernetes import client

from kubesim import KubeSim


def test_version_has_every_field_the_client_requires(api: client.ApiClient) -> None:
    info = client.VersionApi(api).get_code()

    assert (info.major, info.minor) == ("1", "33")
    assert info.git_version.startswith("v1.33")
    assert info.platform and info.go_version and info.compiler and info.build_date


def test_core_api_lists_namespaces_and_secrets(api: client.ApiClient) -> None:
    versions = client.CoreApi(api).get_api_versions()
    resources = client.CoreV1Api(api).get_api_resources()

    assert versions.versions == ["v1"]
    names = {r.name: r for r in resources.resources}
    assert set(names) >= {"namespaces", "secrets"}
    assert names["namespaces"].namespaced is False
    assert names["secrets"].namespaced is True


def test_group_list_offers_istio_versions_preferring_v1(api: client.ApiClient) -> None:
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}

    istio = groups["networking.istio.io"]
    assert [v.version for v in istio.versions] == ["v1", "v1beta1", "v1alpha3"]
    assert istio.preferred_version.version == "v1"
    assert "authorization.k8s.io" in groups


def _get(api: client.ApiClient, path: str, model: str) -> object:
    """GET a path the generated APIs have no method for, deserialised like any other response."""
    serialized = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response = api.call_api(*serialized)
    response.read()
    return api.response_deserialize(response, {"200": model}).data


def test_group_and_group_version_documents(api: client.ApiClient) -> None:
    group = _get(api, "/apis/networking.istio.io", "V1APIGroup")
    resources = _get(api, "/apis/networking.istio.io/v1beta1", "V1APIResourceList")
    authorization = client.AuthorizationV1Api(api).get_api_resources()

    assert group.name == "networking.istio.io"
    assert [r.kind for r in resources.resources] == ["Gateway"]
    assert [r.name for r in authorization.resources] == ["selfsubjectaccessreviews"]


def test_sim_serving_only_v1alpha3_prefers_it_and_hides_the_others(kubesim_factory, api_client_for) -> None:
    sim: KubeSim = kubesim_factory(istio_versions=("v1alpha3",), demo=True)
    api = api_client_for(sim)

    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    custom = client.CustomObjectsApi(api)

    assert [v.version for v in groups["networking.istio.io"].versions] == ["v1alpha3"]
    assert groups["networking.istio.io"].preferred_version.version == "v1alpha3"
    gateway = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1alpha3", "istio-system", "gateways", "ingress-gateway"
    )
    assert gateway["apiVersion"] == "networking.istio.io/v1alpha3"
    try:
        custom.get_namespaced_custom_object("networking.istio.io", "v1", "istio-system", "gateways", "ingress-gateway")
    except client.ApiException as error:
        assert error.status == 404
    else:
        raise AssertionError("v1 should not be served")
