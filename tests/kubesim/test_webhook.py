"""The emulated Istio validating webhook: what it denies, the exact Status a client gets, the deny-host fault."""

from __future__ import annotations

import ipaddress
import json
import urllib.request
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client

from kubesim import KubeSim, webhook
from kubesim.__main__ import parse_args
from kubesim.webhook import gateway_errors, host_errors

GROUP, NS, PLURAL = "networking.istio.io", "istio-system", "gateways"
DENIED = 'admission webhook "validation.istio.io" denied the request: configuration is invalid: '


def _server(name: str, *hosts: str, number: int = 8080) -> dict[str, Any]:
    return {"port": {"number": number, "name": name, "protocol": "HTTP"}, "hosts": list(hosts or ["app.example.com"])}


def _replace_servers(custom: client.CustomObjectsApi, servers: list[dict[str, Any]], name: str = "ingress-gateway"):
    gateway = custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, name)
    gateway["spec"]["servers"] = servers
    return custom.replace_namespaced_custom_object(GROUP, "v1", NS, PLURAL, name, gateway)


def _denial(call, *args: Any) -> tuple[int, str, dict[str, Any]]:
    with pytest.raises(client.ApiException) as caught:
        call(*args)
    return caught.value.status, caught.value.reason, json.loads(caught.value.body)


def test_a_denial_is_the_apiservers_webhook_status(kubesim: KubeSim, custom: client.CustomObjectsApi) -> None:
    status, http_reason, body = _denial(_replace_servers, custom, [])

    assert (status, http_reason) == (400, "Bad Request")
    # k8s.io/apiserver ToStatusErr: Istio sets only a message, so the Status has no reason and no details.
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": DENIED + "gateway must have at least one server",
        "code": 400,
    }
    assert kubesim.webhook.denials == [body["message"]]
    assert kubesim.requests.all()[-1].status == 400


@pytest.mark.parametrize(
    ("servers", "reason"),
    [
        ([_server("web", "app\n.example.com")], 'domain name "app\\n.example.com" invalid (label "app\\n" invalid)'),
        ([_server("web", "app .example.com")], 'label "app " invalid'),
        ([_server("web", "ns/app.example.com\t")], 'label "com\\t" invalid'),
        ([_server("web", "localhost")], "short names (non FQDN) are not allowed"),
        ([_server("web", "*app.example.com")], 'partial wildcard "*app.example.com" not allowed'),
        ([_server("web", "a_b.example.com")], 'label "a_b" invalid'),
        ([_server("web"), _server("web", number=8081)], "port names in servers must be unique: duplicate name web"),
        ([{"port": {"number": 80, "name": "web", "protocol": "HTTP"}, "hosts": []}], "at least one host"),
    ],
)
def test_gateways_istio_refuses_are_denied_with_400(custom: client.CustomObjectsApi, servers, reason: str) -> None:
    status, _, body = _denial(_replace_servers, custom, servers)

    assert status == 400 and "reason" not in body
    assert body["message"].startswith(DENIED) and reason in body["message"]


def test_several_errors_are_listed_like_istios_multierror(custom: client.CustomObjectsApi) -> None:
    _, _, body = _denial(_replace_servers, custom, [_server("a", "bad host.example.com"), _server("a", "x")])

    assert body["message"].startswith(DENIED + "3 errors occurred:\n\t* domain name")


def test_create_and_patch_are_reviewed_too_and_nothing_is_stored(custom: client.CustomObjectsApi) -> None:
    empty = {"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "x"}, "spec": {"servers": []}}
    patch = [{"op": "replace", "path": "/spec/servers/0/hosts", "value": ["evil\n.example.com"]}]

    assert _denial(custom.create_namespaced_custom_object, GROUP, "v1", NS, PLURAL, empty)[0] == 400
    assert _denial(custom.patch_namespaced_custom_object, GROUP, "v1", NS, PLURAL, "ingress-gateway", patch)[0] == 400
    names = [g["metadata"]["name"] for g in custom.list_namespaced_custom_object(GROUP, "v1", NS, PLURAL)["items"]]
    assert names == ["egress-gateway", "ingress-gateway"]
    assert custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "ingress-gateway")["spec"]["servers"][0][
        "hosts"
    ] == ["*"]


def test_a_schema_error_is_still_a_422_before_the_webhook(custom: client.CustomObjectsApi) -> None:
    status, _, body = _denial(_replace_servers, custom, [{"port": {"number": "x", "name": "", "protocol": "HTTP"}}])

    assert status == 422 and body["reason"] == "Invalid"


def test_valid_gateways_pass_and_deletes_are_not_reviewed(kubesim: KubeSim, custom: client.CustomObjectsApi) -> None:
    written = _replace_servers(
        custom, [_server("http", "*"), _server("web", "payments/App.Example.COM", "*.example.com", "1.2.3.4", "a.io.")]
    )

    assert [s["port"]["name"] for s in written["spec"]["servers"]] == ["http", "web"]
    custom.delete_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "egress-gateway")  # seeded with no servers
    assert kubesim.webhook.denials == []


def test_the_deny_host_fault_refuses_any_gateway_carrying_the_host(
    kubesim: KubeSim, custom: client.CustomObjectsApi
) -> None:
    kubesim.faults.deny_host("Blocked.Example.com")

    status, _, body = _denial(_replace_servers, custom, [_server("ok"), _server("web", "payments/blocked.example.com")])

    assert status == 400 and body["message"].startswith(DENIED)
    assert '"payments/blocked.example.com" is denied' in body["message"]
    assert _replace_servers(custom, [_server("ok")])["spec"]["servers"][0]["port"]["name"] == "ok"
    kubesim.faults.clear()
    assert _replace_servers(custom, [_server("web", "blocked.example.com")])["metadata"]["generation"] > 1


def test_the_deny_host_fault_through_the_admin_endpoint(kubesim: KubeSim, custom: client.CustomObjectsApi) -> None:
    request = urllib.request.Request(
        f"{kubesim.url}/_kubesim/faults", data=json.dumps({"deny_hosts": ["x.example.com"]}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["deny_hosts"] == ["x.example.com"]

    assert _denial(_replace_servers, custom, [_server("web", "x.example.com")])[0] == 400


def test_the_webhook_can_be_switched_off(kubesim_factory) -> None:
    sim = kubesim_factory(demo=True, istio_webhook=False)

    assert sim.webhook is None
    assert sim.store.gateway(NS, "egress-gateway")["spec"]["servers"] == []


@pytest.mark.parametrize(
    "host", ["a.example.com", "*.example.com", "*", "ns/a.example.com", "./a.example.com", "*/a.b", "10.0.0.1"]
)
def test_hosts_istio_accepts(host: str) -> None:
    assert host_errors(host) == []


@pytest.mark.parametrize(
    "host",
    ["a.example.com\n", "a\x00.example.com", "a.example.com ", "/a.example.com", "ns/", "a.123", "-a.example.com"],
)
def test_hosts_istio_refuses(host: str) -> None:
    assert host_errors(host) != []


def test_an_empty_gateway_is_refused() -> None:
    assert gateway_errors({"spec": {"servers": []}}) == ["gateway must have at least one server"]
    assert gateway_errors({"spec": {}}) == ["gateway must have at least one server"]


def test_the_command_line_can_switch_the_webhook_off() -> None:
    assert parse_args(["--token", "t", "--no-istio-webhook"]).no_istio_webhook is True
    assert parse_args(["--token", "t"]).no_istio_webhook is False


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789abcdef.:%x-", max_size=45), st.ip_addresses().map(str)))
def test_ip_check_agrees_with_ipaddress(value: str) -> None:
    """The webhook's IP check without parsing answers as `ipaddress.ip_address` does."""
    try:
        ipaddress.ip_address(value)
        expected = True
    except ValueError:
        expected = False
    assert webhook._is_ip(value) is expected


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="aZ09-.*_\u00e9\u00b2", max_size=30),
        st.from_regex(r"(\*\.)?([a-z0-9-]{1,70}\.){0,4}[a-z0-9]{1,5}\.?", fullmatch=True),
        st.builds(
            lambda label, n: ".".join([label] * n), st.text(alphabet="ab1-", min_size=1, max_size=66), st.integers(1, 9)
        ),
    )
)
def test_the_one_match_for_plain_domains_agrees_with_every_rule_in_turn(name: str) -> None:
    assert webhook._domain_errors(name) == webhook._all_domain_errors(name)
