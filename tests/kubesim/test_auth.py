"""Bearer tokens, per-token rules, 401/403 Status answers and SelfSubjectAccessReview."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from kubesim import KubeSim, Rule

GROUP = "networking.istio.io"
USER = "system:serviceaccount:gatewayportal:reader"


@pytest.fixture
def reader(kubesim: KubeSim, api_client_for) -> client.ApiClient:
    kubesim.set_token("reader-token", [Rule.of("get,list", GROUP, "gateways", "istio-system")], user=USER)
    return api_client_for(kubesim, token="reader-token")


def test_unknown_token_is_unauthorized(kubesim: KubeSim, api_client_for) -> None:
    api = api_client_for(kubesim, token="wrong")

    with pytest.raises(client.ApiException) as caught:
        client.VersionApi(api).get_code()

    assert caught.value.status == 401
    assert json.loads(caught.value.body)["reason"] == "Unauthorized"


def test_reader_can_get_but_not_update(reader: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(reader)
    gateway = custom.get_namespaced_custom_object(GROUP, "v1", "istio-system", "gateways", "ingress-gateway")

    with pytest.raises(client.ApiException) as caught:
        custom.replace_namespaced_custom_object(GROUP, "v1", "istio-system", "gateways", "ingress-gateway", gateway)

    body = json.loads(caught.value.body)
    assert caught.value.status == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        f'gateways.networking.istio.io "ingress-gateway" is forbidden: User "{USER}" cannot update resource '
        '"gateways" in API group "networking.istio.io" in the namespace "istio-system"'
    )


def test_reader_cannot_list_secrets(reader: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(reader).list_namespaced_secret("istio-system")

    assert caught.value.status == 403
    assert json.loads(caught.value.body)["message"] == (
        f'secrets is forbidden: User "{USER}" cannot list resource "secrets" in API group "" '
        'in the namespace "istio-system"'
    )


def _review(api: client.ApiClient, verb: str, resource: str, namespace: str, group: str = GROUP):
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, group=group, resource=resource, namespace=namespace
            )
        )
    )
    return client.AuthorizationV1Api(api).create_self_subject_access_review(review)


def test_access_review_answers_from_the_token_rules(reader: client.ApiClient) -> None:
    allowed = _review(reader, "get", "gateways", "istio-system")
    denied = _review(reader, "update", "gateways", "istio-system")
    other_namespace = _review(reader, "get", "gateways", "demo")

    assert allowed.status.allowed is True
    assert allowed.spec.resource_attributes.verb == "get"
    assert denied.status.allowed is False
    assert other_namespace.status.allowed is False


def test_permissions_can_change_while_running(kubesim: KubeSim, reader: client.ApiClient) -> None:
    kubesim.set_token("reader-token", [Rule.of("*", GROUP, "gateways")], user=USER)

    assert _review(reader, "update", "gateways", "istio-system").status.allowed is True
