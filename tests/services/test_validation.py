"""Table-driven tests of services.validation: Istio's Gateway rules, portal spec rules, tenancy, host overlap."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.rendering import GatewaySettings, render_server
from services.validation import (
    HostIndex,
    Issue,
    dns_name_problem,
    hosts_overlap,
    istio_host_problem,
    validate_gateway,
    validate_server,
    validate_spec,
    validate_tenancy,
)
from services.validation import hosts as hosts_module
from services.validation.hosts import is_ip


def server(protocol: str = "HTTP", number: int = 80, name: str = "http", **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"port": {"number": number, "protocol": protocol, "name": name}, "hosts": ["a.example.com"]}
    block.update(extra)
    return block


def gateway(*servers: dict[str, Any], name: str = "ingress-gateway") -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": "istio-system"},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": list(servers)},
    }


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "error"]


def warnings(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "warning"]


def paths(issues: list[Issue]) -> set[str]:
    return {i.path for i in issues}


# --- §4 hosts ------------------------------------------------------------------------------------------------------

VALID_HOSTS = [
    "*",
    "app.example.com",
    "*.example.com",
    "Foo.Example.COM",
    "istio.io.",
    "1.1.1.1",
    "::ffff:1.2.3.4",
    "ns/app.example.com",
    "*/app.example.com",
    "./app.example.com",
    "ns/*",
    "a-b.c-d.com",
    "x" * 63 + ".com",
]

INVALID_HOSTS = [
    ("", "empty"),
    ("foo", "short name"),
    ("::1", "short name"),
    ("*foo.com", "partial wildcard"),
    ("*-foo.com", "partial wildcard"),
    ("foo*.bar.com", "partial wildcard"),
    ("foo.*.bar.com", "wildcard"),
    ("1.2.3", "all digits"),
    ("foo.123", "all digits"),
    ("foo_bar.com", "label"),
    ("foo..com", "label"),
    ("-foo.com", "label"),
    ("foo-.com", "label"),
    ("x" * 64 + ".com", "label"),
    (".".join(["a" * 60] * 5), "255"),
    ("/foo.com", "empty side"),
    ("ns/", "empty side"),
    ("~/foo.com", "invalid namespace value"),
    ("my.ns/foo.com", "invalid namespace"),
    ("01.02.03.04", "all digits"),
    ("foo.com..", "label"),
]


@pytest.mark.parametrize("host", VALID_HOSTS)
def test_istio_accepts_host(host):
    assert istio_host_problem(host) is None


@pytest.mark.parametrize(("host", "fragment"), INVALID_HOSTS)
def test_istio_refuses_host(host, fragment):
    problem = istio_host_problem(host)
    assert problem is not None
    assert fragment in problem


def test_host_length_limit_is_255_not_253():
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253
    longer = "e." + name  # 255
    assert len(longer) == 255
    assert dns_name_problem(longer) is None
    assert "255" in dns_name_problem("ee." + name)


def test_server_requires_hosts():
    assert "spec.servers[0].hosts" in paths(validate_server({"port": server()["port"]}, "spec.servers[0]"))
    assert paths(validate_server(server(hosts=[]))) == {"hosts"}
    assert paths(validate_server(server(hosts=["ok.example.com", "bad"]))) == {"hosts[1]"}


# --- §3 port -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "protocol", ["http", "Http", "HTTP", "https", "grpc-web", "http_proxy", "mongo", "redis", "udp"]
)
def test_protocol_is_case_insensitive(protocol):
    tls = {"tls": {"mode": "SIMPLE", "credentialName": "x"}} if protocol.upper() == "HTTPS" else {}
    assert validate_server(server(protocol=protocol, **tls)) == []


@pytest.mark.parametrize("protocol", ["", "kafka", "h2", "HBONE", " HTTP", None, 80])
def test_invalid_protocol(protocol):
    issues = validate_server(server(protocol=protocol))
    assert paths(issues) == {"port.protocol"}
    assert "HTTPS" in issues[0].message


@pytest.mark.parametrize(
    ("number", "ok"),
    [(1, True), (65535, True), (0, False), (65536, False), (-1, False), ("80", False), (True, False), (2**32, False)],
)
def test_port_number_range(number, ok):
    issues = validate_server(server(number=number))
    assert (issues == []) is ok
    if not ok:
        assert paths(issues) == {"port.number"}


@pytest.mark.parametrize("key", ["number", "protocol", "name"])
def test_port_keys_required_by_crd(key):
    block = server()
    del block["port"][key]
    assert f"port.{key}" in paths(validate_server(block))


def test_port_missing():
    assert paths(validate_server({"hosts": ["a.example.com"]})) == {"port"}


@pytest.mark.parametrize(("target", "ok"), [(0, True), (8080, False), (-1, False)])
def test_target_port_has_no_impact(target, ok):
    block = server()
    block["port"]["targetPort"] = target
    issues = validate_server(block)
    assert (issues == []) is ok
    if target == 8080:
        assert "no impact" in issues[0].message


@pytest.mark.parametrize(("name", "ok"), [("Henry", True), ("web/http_1", True), ("", False), (7, False)])
def test_port_name_needs_no_format_but_must_be_set(name, ok):
    assert (validate_server(server(name=name)) == []) is ok


# --- §5 bind -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "number", "ok"),
    [
        ("", 80, True),
        ("10.0.0.1", 80, True),
        ("::1", 80, True),
        ("fe80::1", 80, True),
        ("unix:///var/run/gw.sock", 0, True),
        ("unix://@abstract", 0, True),
        ("unix:///var/run/gw.sock", 80, False),
        ("unix://", 0, False),
        ("unix://relative.sock", 0, False),
        ("unix:///var/run/", 0, False),
        ("10.0.0.0/24", 80, False),
        ("gateway.local", 80, False),
        ("10.0.0.1:80", 80, False),
        ("010.0.0.1", 80, False),
        ("uds:///var/run/gw.sock", 80, False),
    ],
)
def test_bind(bind, number, ok):
    issues = validate_server(server(number=number, bind=bind))
    assert (issues == []) is ok, issues


# --- §2 protocol/TLS coupling --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "tls", "ok"),
    [
        ("HTTPS", None, False),
        ("TLS", None, False),
        ("HTTPS", {}, True),  # mode defaults to PASSTHROUGH
        ("HTTP", {"httpsRedirect": True}, True),
        ("HTTP", {"mode": "PASSTHROUGH"}, True),
        ("HTTP", {"mode": "AUTO_PASSTHROUGH"}, True),
        ("HTTP", {"mode": "SIMPLE", "credentialName": "x"}, False),
        ("HTTP", {"serverCertificate": "/c"}, False),
        ("GRPC", {"caCertificates": "/ca"}, False),
        ("TCP", {"httpsRedirect": True}, False),
        ("MONGO", {}, False),
        ("TCP", None, True),
    ],
)
def test_protocol_tls_coupling(protocol, tls, ok):
    block = server(protocol=protocol)
    if tls is not None:
        block["tls"] = tls
    assert (errors(validate_server(block)) == []) is ok


def test_http_with_credential_name_and_no_mode_only_warns():
    issues = validate_server(server(tls={"credentialName": "x"}))
    assert errors(issues) == []
    assert paths(warnings(issues)) == {"tls.credentialName"}


def test_coupling_skipped_when_port_invalid():
    issues = validate_server(server(protocol="HTTPS", number=0))
    assert paths(issues) == {"port.number"}


# --- §6 TLS options ------------------------------------------------------------------------------------------------


def https(tls: dict[str, Any]) -> dict[str, Any]:
    return server(protocol="HTTPS", number=443, name="https", tls=tls)


@pytest.mark.parametrize(
    ("tls", "error_paths"),
    [
        ({"mode": "SIMPLE", "credentialName": "x"}, set()),
        ({"mode": "SIMPLE", "credentialNames": ["x", "y"]}, set()),
        ({"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k"}, set()),
        ({"mode": "SIMPLE", "serverCertificate": "/c"}, {"tls.privateKey"}),
        ({"mode": "SIMPLE"}, {"tls.serverCertificate", "tls.privateKey"}),
        ({"mode": "SIMPLE", "tlsCertificates": [{"serverCertificate": "/c", "privateKey": "/k"}]}, set()),
        ({"mode": "SIMPLE", "tlsCertificates": [{"serverCertificate": "/c"}]}, {"tls.tlsCertificates[0].privateKey"}),
        ({"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k", "caCrl": "/crl"}, {"tls.caCrl"}),
        ({"mode": "SIMPLE", "credentialName": "x", "caCrl": "/crl"}, set()),
        ({"mode": "SIMPLE", "credentialName": "x", "serverCertificate": "/c", "privateKey": "/k"}, {"tls"}),
        ({"mode": "SIMPLE", "credentialName": "x", "tlsCertificates": [{"serverCertificate": "/c"}]}, {"tls"}),
        ({"mode": "SIMPLE", "credentialNames": ["a"], "tlsCertificates": [{}]}, {"tls"}),
        ({"mode": "SIMPLE", "credentialName": "a", "credentialNames": ["b"]}, {"tls"}),
        ({"mode": "SIMPLE", "credentialNames": ["a", "b", "c"]}, {"tls.credentialNames"}),
        ({"mode": "SIMPLE", "credentialNames": []}, {"tls.credentialNames", "tls.serverCertificate", "tls.privateKey"}),
        ({"mode": "MUTUAL", "credentialName": "x"}, set()),
        ({"mode": "OPTIONAL_MUTUAL", "credentialNames": ["x"]}, set()),
        ({"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k", "caCertificates": "/ca"}, set()),
        ({"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k"}, {"tls.caCertificates"}),
        (
            {
                "mode": "MUTUAL",
                "tlsCertificates": [{"serverCertificate": "/c", "privateKey": "/k", "caCertificates": "/a"}],
            },
            {"tls.caCertificates"},
        ),
        (
            {"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k", "caCertificates": "/a", "caCrl": "/r"},
            set(),
        ),
        ({"mode": "ISTIO_MUTUAL"}, set()),
        ({"mode": "ISTIO_MUTUAL", "credentialName": "x"}, {"tls.credentialName"}),
        ({"mode": "ISTIO_MUTUAL", "serverCertificate": "/c"}, {"tls.serverCertificate"}),
        ({"mode": "ISTIO_MUTUAL", "minProtocolVersion": "TLSV1_0"}, set()),
        ({"mode": "PASSTHROUGH"}, set()),
        ({"mode": "PASSTHROUGH", "credentialName": "x", "caCrl": "/r"}, {"tls.caCrl"}),
        ({"mode": "AUTO_PASSTHROUGH", "credentialName": "x", "serverCertificate": "/c", "privateKey": "/k"}, {"tls"}),
        ({"mode": "simple", "credentialName": "x"}, {"tls.mode"}),
        ({"mode": "SIMPLE", "credentialName": "x", "minProtocolVersion": "TLS1_2"}, {"tls.minProtocolVersion"}),
        ({"mode": "SIMPLE", "credentialName": "x", "maxProtocolVersion": "tlsv1_3"}, {"tls.maxProtocolVersion"}),
        ({"mode": "SIMPLE", "credentialName": "x", "httpsRedirect": "yes"}, {"tls.httpsRedirect"}),
    ],
)
def test_tls_mode_table_errors(tls, error_paths):
    assert paths(errors(validate_server(https(tls)))) == error_paths


@pytest.mark.parametrize(
    ("tls", "warning_paths"),
    [
        ({"mode": "PASSTHROUGH", "credentialName": "x"}, {"tls.credentialName"}),
        ({"mode": "AUTO_PASSTHROUGH", "caCertificates": "/a"}, {"tls.caCertificates"}),
        ({}, set()),
        ({"mode": "SIMPLE", "credentialName": "x", "minProtocolVersion": "TLSV1_0"}, {"tls.minProtocolVersion"}),
        ({"mode": "SIMPLE", "credentialName": "x", "minProtocolVersion": "TLSV1_1"}, {"tls.minProtocolVersion"}),
        (
            {"mode": "SIMPLE", "credentialName": "x", "minProtocolVersion": "TLSV1_0", "cipherSuites": ["AES128-SHA"]},
            set(),
        ),
        ({"mode": "SIMPLE", "credentialName": "x", "minProtocolVersion": "TLSV1_2"}, set()),
        (
            {
                "mode": "SIMPLE",
                "credentialName": "x",
                "cipherSuites": ["ECDHE-RSA-AES128-GCM-SHA256", "", "ALL", "-X", "!Y"],
            },
            set(),
        ),
        (
            {"mode": "SIMPLE", "credentialName": "x", "cipherSuites": ["TLS_AES_128_GCM_SHA256"]},
            {"tls.cipherSuites[0]"},
        ),
        (
            {"mode": "SIMPLE", "credentialName": "x", "cipherSuites": ["AES128-SHA", "AES128-SHA"]},
            {"tls.cipherSuites[1]"},
        ),
        (
            {"mode": "SIMPLE", "tlsCertificates": [{"serverCertificate": "/c", "privateKey": "/k"}] * 3},
            {"tls.tlsCertificates"},
        ),
    ],
)
def test_tls_warnings(tls, warning_paths):
    issues = validate_server(https(tls))
    assert paths(warnings(issues)) == warning_paths


def test_invalid_cipher_warning_names_accepted_list():
    issues = validate_server(https({"mode": "SIMPLE", "credentialName": "x", "cipherSuites": ["bogus"]}))
    assert "ECDHE-RSA-AES128-GCM-SHA256" in issues[0].message


# --- §1 Gateway object ---------------------------------------------------------------------------------------------


def test_seed_gateway_shape_is_valid():
    assert validate_gateway(gateway(server(hosts=["*"]))) == []


@pytest.mark.parametrize(
    "api_version", ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
)
def test_all_api_versions_accepted(api_version):
    manifest = gateway(server())
    manifest["apiVersion"] = api_version
    assert validate_gateway(manifest) == []


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda m: m.update(apiVersion="gateway.networking.k8s.io/v1"), "apiVersion"),
        (lambda m: m.update(kind="VirtualService"), "kind"),
        (lambda m: m["metadata"].update(name="my.gateway"), "metadata.name"),
        (lambda m: m["metadata"].update(name="-gw"), "metadata.name"),
        (lambda m: m["metadata"].update(name="g" * 64), "metadata.name"),
        (lambda m: m["metadata"].pop("name"), "metadata.name"),
        (lambda m: m["spec"].update(servers=[]), "spec.servers"),
        (lambda m: m["spec"].pop("servers"), "spec.servers"),
        (lambda m: m.pop("spec"), "spec"),
        (lambda m: m["spec"]["servers"].append(None), "spec.servers[1]"),
    ],
)
def test_gateway_object_errors(mutate, path):
    manifest = gateway(server())
    mutate(manifest)
    assert path in paths(errors(validate_gateway(manifest)))


def test_upper_case_gateway_name_is_a_dns_label():
    assert validate_gateway(gateway(server(), name="Ingress")) == []


def test_port_names_unique_case_sensitive():
    duplicate = gateway(server(name="web"), server(number=81, name="web"))
    assert paths(errors(validate_gateway(duplicate))) == {"spec.servers[1].port.name"}
    assert validate_gateway(gateway(server(name="web"), server(number=81, name="WEB"))) == []


def test_empty_port_names_count_as_duplicates():
    issues = errors(validate_gateway(gateway(server(name=""), server(number=81, name=""))))
    assert "spec.servers[1].port.name" in paths(issues)
    assert any("unique" in i.message for i in issues)


def test_server_paths_are_prefixed():
    issues = validate_gateway(gateway(server(), server(number=81, name="b", hosts=["bad"])))
    assert paths(issues) == {"spec.servers[1].hosts[0]"}


@pytest.mark.parametrize(("protocol", "warned"), [("HTTP", False), ("GRPC", False), ("HTTPS", True), ("TLS", True)])
def test_https_redirect_on_non_http_only_warns(protocol, warned):
    tls = {"httpsRedirect": True}
    if protocol in ("HTTPS", "TLS"):
        tls.update(mode="SIMPLE", credentialName="x")
    issues = validate_gateway(gateway(server(protocol=protocol, tls=tls)))
    assert errors(issues) == []
    assert ("spec.servers[0].tls.httpsRedirect" in paths(warnings(issues))) is warned


def test_min_above_max_protocol_version_is_portal_warning():
    tls = {"mode": "SIMPLE", "credentialName": "x", "minProtocolVersion": "TLSV1_3", "maxProtocolVersion": "TLSV1_2"}
    issues = validate_gateway(gateway(https(tls)))
    assert errors(issues) == []
    assert paths(warnings(issues)) == {"spec.servers[0].tls.minProtocolVersion"}


def test_tls_auto_does_not_compare():
    tls = {"mode": "SIMPLE", "credentialName": "x", "minProtocolVersion": "TLSV1_3", "maxProtocolVersion": "TLS_AUTO"}
    assert validate_gateway(gateway(https(tls))) == []


# --- §7 runtime merge clashes (warnings) ---------------------------------------------------------------------------


def tls_server(name: str, hosts: list[str], protocol: str = "HTTPS", number: int = 443, **extra: Any) -> dict[str, Any]:
    return server(
        protocol=protocol,
        number=number,
        name=name,
        hosts=hosts,
        tls={"mode": "SIMPLE", "credentialName": name},
        **extra,
    )


@pytest.mark.parametrize(
    ("servers", "warned_paths"),
    [
        ([tls_server("a", ["x.example.com"]), tls_server("b", ["y.example.com"])], set()),
        ([tls_server("a", ["x.example.com"]), tls_server("b", ["x.example.com"])], {"spec.servers[1]"}),
        ([tls_server("a", ["x.example.com"]), tls_server("b", ["x.example.com"], protocol="TLS")], {"spec.servers[1]"}),
        ([tls_server("a", ["x.example.com"]), tls_server("b", ["x.example.com"], number=8443)], set()),
        ([tls_server("a", ["x.example.com"]), tls_server("b", ["x.example.com"], bind="10.0.0.1")], set()),
        ([server(name="a"), server(name="b", protocol="HTTP2")], set()),
        ([server(name="a"), server(name="b", protocol="TCP")], {"spec.servers[1]"}),
        ([server(name="a", protocol="MONGO"), server(name="b", protocol="TCP")], {"spec.servers[1]"}),
        ([server(name="a", number=443), tls_server("b", ["y.example.com"])], {"spec.servers[1]"}),
    ],
)
def test_merge_clashes(servers, warned_paths):
    issues = validate_gateway(gateway(*servers))
    assert errors(issues) == []
    assert paths(warnings(issues)) == warned_paths
    assert all("skip" in i.message for i in warnings(issues))


def test_duplicate_https_route_names_warn():
    servers = [tls_server("same", ["x.example.com"]), tls_server("same", ["y.example.com"])]
    issues = validate_gateway(gateway(*servers))
    assert paths(errors(issues)) == {"spec.servers[1].port.name"}
    assert any("route name" in i.message for i in warnings(issues))


# --- Portal spec rules ---------------------------------------------------------------------------------------------

BASE_SPEC: dict[str, Any] = {
    "name": "checkout",
    "namespace": "payments",
    "traffic_type": "ingress",
    "hosts": ["checkout.payments.example.com"],
    "port": 443,
    "protocol": "HTTPS",
    "mode": "SIMPLE",
    "tls_options": {"tls_secret": {"sha256_fingerprint": "ab"}},
    "https_redirect": False,
    "min_protocol_version": None,
    "max_protocol_version": None,
    "clusters": ["prod-eu-1"],
    "cluster_selector": None,
    "ticket": "",
}

PLAIN_SPEC = {**BASE_SPEC, "port": 80, "protocol": "HTTP", "mode": None, "tls_options": {}}


def spec_with(base: dict[str, Any] = BASE_SPEC, **changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    "spec",
    [
        BASE_SPEC,
        PLAIN_SPEC,
        spec_with(PLAIN_SPEC, https_redirect=True),
        spec_with(PLAIN_SPEC, protocol="GRPC", https_redirect=True),
        spec_with(PLAIN_SPEC, protocol="TCP", port=5432),
        spec_with(PLAIN_SPEC, protocol="MONGO", port=27017, tls_options=None),
        spec_with(tls_options={"tls_secret_ref": {"secret_name": "existing-secret"}}),
        spec_with(
            tls_options={"tls_secret_path": {"cert_path": "/etc/c.crt", "key_path": "/etc/c.key", "ca_cert_path": None}}
        ),
        spec_with(
            mode="MUTUAL", tls_options={"tls_secret_path": {"cert_path": "/c", "key_path": "/k", "ca_cert_path": "/ca"}}
        ),
        spec_with(mode="PASSTHROUGH", tls_options={}),
        spec_with(mode="PASSTHROUGH"),
        spec_with(protocol="TLS", mode="PASSTHROUGH", tls_options={}),
        spec_with(min_protocol_version="TLSV1_2", max_protocol_version="TLSV1_3"),
        spec_with(min_protocol_version="TLSV1_3", max_protocol_version="TLS_AUTO"),
        spec_with(hosts=["*.payments.example.com", "a.payments.example.com", "*"]),
        spec_with(hosts=["1.2.3.4"]),
        spec_with(name="a" * 63),
    ],
)
def test_valid_specs(spec):
    assert validate_spec(spec, has_tls_material=True) == {}
    # What the portal accepts must render to a block Istio admits, with either host style.
    for scoped in (True, False):
        block = render_server(spec, GatewaySettings(namespace_scoped_hosts=scoped))
        assert errors(validate_server(block)) == []


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"name": "Checkout"}, "name", "DNS-1123"),
        ({"name": "check.out"}, "name", "DNS-1123"),
        ({"name": "a" * 64}, "name", "63"),
        ({"name": ""}, "name", "DNS-1123"),
        ({"namespace": "Pay_ments"}, "namespace", "DNS-1123"),
        ({"port": 0}, "port", "1 to 65535"),
        ({"port": 65536}, "port", "1 to 65535"),
        ({"port": "443"}, "port", "1 to 65535"),
        ({"port": True}, "port", "1 to 65535"),
        ({"protocol": "UDP"}, "protocol", "HTTP HTTPS".replace(" ", ", ")),
        ({"protocol": "https"}, "protocol", "GRPC"),
        ({"traffic_type": "sideways"}, "traffic_type", "'ingress' or 'egress'"),
        ({"hosts": []}, "hosts", "at least one"),
        ({"hosts": None}, "hosts", "at least one"),
        ({"hosts": ["payments/a.example.com"]}, "hosts", "adds the '<namespace>/' prefix"),
        ({"hosts": ["foo"]}, "hosts", "fully qualified"),
        ({"hosts": ["*foo.example.com"]}, "hosts", "partial wildcard"),
        ({"hosts": ["a.example.com", "A.Example.com."]}, "hosts", "more than once"),
        ({"hosts": [3]}, "hosts", "not a host name"),
        ({"mode": None}, "mode", "SIMPLE, PASSTHROUGH, MUTUAL"),
        ({"mode": "ISTIO_MUTUAL"}, "mode", "SIMPLE, PASSTHROUGH, MUTUAL"),
        ({"https_redirect": True}, "https_redirect", "HTTP, HTTP2 or GRPC"),
        ({"https_redirect": "yes"}, "https_redirect", "true or false"),
        ({"min_protocol_version": "TLSV1_3", "max_protocol_version": "TLSV1_2"}, "min_protocol_version", "at or below"),
        ({"min_protocol_version": "TLS1.2"}, "min_protocol_version", "TLSV1_2"),
        ({"max_protocol_version": "tlsv1_3"}, "max_protocol_version", "TLSV1_3"),
    ],
)
def test_invalid_specs(changes, field, fragment):
    result = validate_spec(spec_with(**changes), has_tls_material=True)
    assert field in result, result
    assert any(fragment in message for message in result[field]), result[field]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mode": "SIMPLE"}, "mode"),
        ({"mode": "PASSTHROUGH"}, "mode"),
        ({"tls_options": {"tls_secret_ref": {"secret_name": "x"}}}, "tls_options"),
        ({"min_protocol_version": "TLSV1_2"}, "min_protocol_version"),
        ({"max_protocol_version": "TLSV1_3"}, "max_protocol_version"),
        ({"protocol": "TCP", "https_redirect": True}, "https_redirect"),
        ({"protocol": "MONGO", "https_redirect": True}, "https_redirect"),
    ],
)
def test_plaintext_takes_no_tls(changes, field):
    result = validate_spec(spec_with(PLAIN_SPEC, **changes), has_tls_material=False)
    assert list(result) == [field]
    assert "HTTP" in result[field][0]


@pytest.mark.parametrize(
    ("mode", "tls_options", "expected"),
    [
        ("SIMPLE", {}, {"non_field_errors"}),
        (
            "SIMPLE",
            {"tls_secret": {"sha256_fingerprint": "ab"}, "tls_secret_ref": {"secret_name": "x"}},
            {"non_field_errors"},
        ),
        ("MUTUAL", {"tls_secret_ref": {"secret_name": "x"}}, {"tls_secret_ref"}),
        ("PASSTHROUGH", {"tls_secret_ref": {"secret_name": "x"}}, {"tls_secret_ref"}),
        ("PASSTHROUGH", {"tls_secret_path": {"cert_path": "/c", "key_path": "/k"}}, {"tls_secret_path"}),
        (
            "MUTUAL",
            {"tls_secret_path": {"cert_path": "/c", "key_path": "/k", "ca_cert_path": None}},
            {"tls_secret_path"},
        ),
        ("SIMPLE", {"tls_secret_path": {"cert_path": "c.crt", "key_path": "/k"}}, {"tls_secret_path"}),
        ("SIMPLE", {"tls_secret_ref": {"secret_name": "Bad_Name"}}, {"tls_secret_ref"}),
        ("SIMPLE", {"tls_secret_ref": {}}, {"tls_secret_ref"}),
        ("SIMPLE", {"tls_bogus": {}}, {"non_field_errors"}),
    ],
)
def test_tls_options_rules(mode, tls_options, expected):
    result = validate_spec(spec_with(mode=mode, tls_options=tls_options), has_tls_material=True)
    assert set(result) == {"tls_options"}, result
    assert set(result["tls_options"]) == expected


def test_passthrough_with_secret_ref_and_bad_name_keeps_both_messages():
    spec = spec_with(mode="PASSTHROUGH", tls_options={"tls_secret_ref": {"secret_name": "Bad_Name"}})
    nested = validate_spec(spec, has_tls_material=False)["tls_options"]["tls_secret_ref"]
    assert set(nested) == {"secret_name", "non_field_errors"}
    assert any("PASSTHROUGH" in m for m in nested["non_field_errors"])


def test_tls_secret_needs_material():
    result = validate_spec(BASE_SPEC, has_tls_material=False)
    assert set(result["tls_options"]["tls_secret"]) == {"cert", "key"}


def test_inline_tls_secret_counts_as_material_and_mutual_needs_ca():
    inline = {"tls_secret": {"cert": "PEM", "key": "PEM"}}
    assert validate_spec(spec_with(tls_options=inline), has_tls_material=False) == {}
    result = validate_spec(spec_with(mode="MUTUAL", tls_options=inline), has_tls_material=False)
    assert result == {"tls_options": {"tls_secret": {"ca_cert": [result["tls_options"]["tls_secret"]["ca_cert"][0]]}}}
    assert "ca_cert" in result["tls_options"]["tls_secret"]["ca_cert"][0]
    with_ca = {"tls_secret": {"cert": "PEM", "key": "PEM", "ca_cert": "PEM"}}
    assert validate_spec(spec_with(mode="MUTUAL", tls_options=with_ca), has_tls_material=False) == {}


# --- Tenancy -------------------------------------------------------------------------------------------------------

TEAM = {"namespaces": ["payments", "payments-canary"], "allowed_domains": ["payments.example.com", "pay.example.net"]}


def tenancy(hosts: list[str], *, namespace: str = "payments", wildcards: bool = False, platform: bool = False) -> dict:
    spec = {"namespace": namespace, "hosts": hosts}
    return validate_tenancy(spec, allow_wildcards=wildcards, is_platform=platform, **TEAM)


@pytest.mark.parametrize(
    "hosts",
    [
        ["payments.example.com"],
        ["checkout.payments.example.com"],
        ["a.b.pay.example.net"],
        ["CHECKOUT.Payments.Example.com."],
    ],
)
def test_hosts_inside_team_domains(hosts):
    assert tenancy(hosts) == {}


@pytest.mark.parametrize(
    ("hosts", "fragment"),
    [
        (["evilpayments.example.com"], "outside"),
        (["example.com"], "outside"),
        (["payments.example.com.evil.io"], "outside"),
        (["*.payments.example.com"], "not allowed"),
        (["*"], "platform"),
    ],
)
def test_hosts_outside_team_domains(hosts, fragment):
    result = tenancy(hosts)
    assert list(result) == ["hosts"]
    assert fragment in result["hosts"][0]
    if fragment != "platform":
        assert "payments.example.com, pay.example.net" in result["hosts"][0]


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("*.payments.example.com", True),
        ("*.eu.payments.example.com", True),
        ("*.example.com", False),
        ("*.pay.example.net", True),
        ("*", False),
    ],
)
def test_wildcards_with_allow_wildcards(host, ok):
    assert (tenancy([host], wildcards=True) == {}) is ok


def test_namespace_must_be_the_teams_even_for_platform():
    for platform in (False, True):
        result = tenancy(["payments.example.com"], namespace="kube-system", platform=platform)
        assert list(result) == ["namespace"]
        assert "payments, payments-canary" in result["namespace"][0]


@pytest.mark.parametrize("host", ["*", "*.anything.io", "other.example.org"])
def test_platform_may_use_any_host(host):
    assert tenancy([host], platform=True) == {}


# --- hosts_overlap -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("a.example.com", "A.Example.COM", True),
        ("a.example.com", "a.example.com.", True),
        ("a.example.com", "b.example.com", False),
        ("*", "anything.io", True),
        ("*", "*.x.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "badexample.com", False),
        ("*.example.com", "*.a.example.com", True),
        ("*.example.com", "*.example.org", False),
        ("*.a.example.com", "*.b.example.com", False),
        ("ns/a.example.com", "*.example.com", True),
    ],
)
def test_hosts_overlap(a, b, overlap):
    assert hosts_overlap(a, b) is overlap
    assert hosts_overlap(b, a) is overlap
    # The index answers what the rule answers, for each side indexed.
    assert HostIndex([a]).overlaps(b) is overlap
    assert HostIndex([b]).overlaps(a) is overlap


def test_a_host_index_answers_for_all_its_hosts():
    index = HostIndex(["a.payments.example.com", "*.shop.example.org"])

    assert index.overlaps("*.payments.example.com")
    assert index.overlaps("x.y.shop.example.org")
    assert index.overlaps("*.example.org")
    assert index.overlaps("*")
    assert not index.overlaps("payments.example.com")
    assert not index.overlaps("shop.example.org")
    assert not index.overlaps_every_host
    assert HostIndex(["a.example.com", "NS/*"]).overlaps_every_host
    assert not HostIndex([]).overlaps("*")


_IP_ALPHABET = "0123456789abcdefABCDEF.:%/x-_* \u0661\uff10"


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet=_IP_ALPHABET, max_size=45), st.ip_addresses().map(str), st.text(max_size=20)))
def test_is_ip_agrees_with_ipaddress(value: str) -> None:
    """The check without parsing answers as `ipaddress.ip_address` does, for names and addresses alike."""
    try:
        ipaddress.ip_address(value)
        expected = True
    except ValueError:
        expected = False
    assert is_ip(value) is expected


_NAME_ALPHABET = "aZ09-.*_/\u00e9\u0661"
_names = st.one_of(
    st.text(alphabet=_NAME_ALPHABET, max_size=30),
    st.from_regex(r"(\*\.)?([a-z0-9-]{1,70}\.){1,4}[a-z0-9]{1,5}\.?", fullmatch=True),
    st.builds(
        lambda label, n: ".".join([label] * n), st.text(alphabet="ab1-", min_size=1, max_size=66), st.integers(2, 9)
    ),
)


@settings(max_examples=1000, deadline=None)
@given(_names)
def test_the_one_match_for_plain_names_agrees_with_every_rule_in_turn(name: str) -> None:
    assert dns_name_problem(name) == hosts_module._dns_name_problem(name)
