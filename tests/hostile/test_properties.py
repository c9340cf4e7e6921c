"""Hypothesis properties of the pure modules: host overlap, rendering, and the gateway planner.

No database, no cluster: specs, live Gateways and cluster facts are generated, from small pools of names, hosts
and ports so that collisions (the interesting cases) are frequent.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clusters.reconcile import DesiredService, Facts, Plan, plan_gateway, server_name
from services import validation
from services.rendering import GatewaySettings, port_name, render_server, secret_name

LABELS = st.sampled_from(["a", "b", "app", "x1", "shop-2"])
DOMAINS = st.sampled_from(["example.com", "payments.example.com", "b.example.com", "example.net"])
PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def hosts(draw) -> str:
    """Exact, wildcard or `*` hosts over a few domains, in any case, sometimes `namespace/`-prefixed."""
    kind = draw(st.sampled_from(["exact", "deep", "wildcard", "star"]))
    domain = draw(DOMAINS)
    host = {
        "exact": f"{draw(LABELS)}.{domain}",
        "deep": f"{draw(LABELS)}.{draw(LABELS)}.{domain}",
        "wildcard": f"*.{domain}",
        "star": "*",
    }[kind]
    if draw(st.booleans()):
        host = host.upper()
    if draw(st.booleans()):
        host = f"{draw(LABELS)}/{host}"
    return host


def _matches(pattern: str, name: str) -> bool:
    return pattern == "*" or pattern == name or (pattern.startswith("*.") and name.endswith(pattern[1:]))


def _common_name_exists(a: str, b: str) -> bool:
    """Oracle: some concrete name both hosts match (a wildcard's witness is a fresh label under it)."""
    a, b = (h.rpartition("/")[2].lower().rstrip(".") for h in (a, b))
    witnesses = {a, b, "zz." + a[2:], "zz." + b[2:], "zz.example.org"}
    return any(_matches(a, name) and _matches(b, name) for name in witnesses)


@PROPERTIES
@given(hosts(), hosts())
def test_host_overlap_is_symmetric_and_agrees_with_a_witness(a, b):
    assert validation.hosts_overlap(a, b) == validation.hosts_overlap(b, a)
    assert validation.hosts_overlap(a, b) == _common_name_exists(a, b)
    assert validation.hosts_overlap(a, a)


@PROPERTIES
@given(st.lists(hosts(), max_size=4), hosts())
def test_a_host_index_finds_exactly_the_hosts_that_overlap(indexed, host):
    index = validation.HostIndex(indexed)
    assert index.overlaps(host) == any(validation.hosts_overlap(ours, host) for ours in indexed)
    assert index.overlaps_every_host == any(validation.hosts_overlap(ours, "zz.example.org") for ours in indexed)


# --- Specs --------------------------------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "a-b", "b", "shop"])
NAMESPACES = st.sampled_from(["c", "b-c", "payments"])
VERSIONS = st.sampled_from([None, *validation.TLS_VERSIONS])
ANY_PORT = st.integers(1, 65535)
PLAIN_HOSTS = hosts().map(lambda h: h.rpartition("/")[2].lower())


@st.composite
def specs(draw, *, ports=ANY_PORT) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(spec, tls material or None), valid by construction; validate_spec is asked anyway (see below)."""
    protocol = draw(st.sampled_from(validation.PORTAL_PROTOCOLS))
    spec: dict[str, Any] = {
        "name": draw(NAMES),
        "namespace": draw(NAMESPACES),
        "traffic_type": draw(st.sampled_from(validation.TRAFFIC_TYPES)),
        "hosts": draw(st.lists(PLAIN_HOSTS, min_size=1, max_size=3, unique=True)),
        "port": draw(ports),
        "protocol": protocol,
        "mode": None,
        "tls_options": {},
        "https_redirect": protocol in validation.PORTAL_HTTP_FAMILY and draw(st.booleans()),
        "min_protocol_version": None,
        "max_protocol_version": None,
        "clusters": ["prod-eu-1"],
        "cluster_selector": None,
        "ticket": "",
    }
    material = None
    if protocol in validation.TLS_BEARING:
        spec["mode"] = mode = draw(st.sampled_from(validation.PORTAL_TLS_MODES))
        source = draw(st.sampled_from(_sources(mode)))
        spec["tls_options"] = {source: _source_value(draw, source, mode)}
        if source == "tls_secret":
            material = {"cert": f"CERT {spec['name']}", "key": f"KEY {spec['name']}", "ca_cert": "CA"}
        if mode != "PASSTHROUGH":
            spec["min_protocol_version"], spec["max_protocol_version"] = sorted(
                [draw(VERSIONS), draw(VERSIONS)], key=lambda v: (v is not None, v or "")
            )
    return spec, material


def _sources(mode: str) -> list[str]:
    return {"SIMPLE": list(validation.TLS_SOURCES), "MUTUAL": ["tls_secret", "tls_secret_path"]}.get(
        mode, ["tls_secret"]
    )


def _source_value(draw, source: str, mode: str) -> dict[str, Any]:
    if source == "tls_secret":
        return {"sha256_fingerprint": "ab" * 32}
    if source == "tls_secret_ref":
        return {"secret_name": draw(st.sampled_from(["wildcard-cert", "shop.tls"]))}
    return {
        "cert_path": "/etc/istio/certs/tls.crt",
        "key_path": "/etc/istio/certs/tls.key",
        "ca_cert_path": "/etc/istio/certs/ca.crt" if mode == "MUTUAL" else None,
    }


@PROPERTIES
@given(specs(), st.booleans())
def test_every_accepted_spec_renders_a_server_istio_accepts(spec_and_material, scoped):
    spec, material = spec_and_material
    assume(not validation.validate_spec(spec, has_tls_material=material is not None))

    server = render_server(spec, GatewaySettings(namespace_scoped_hosts=scoped))

    assert [i for i in validation.validate_server(server) if i.severity == "error"] == []
    gateway = _gateway([server])
    assert [i for i in validation.validate_gateway(gateway) if i.severity == "error"] == []


@PROPERTIES
@given(specs(), specs())
def test_distinct_services_render_distinct_port_names(first, second):
    (a, _), (b, _) = first, second
    identity = ("protocol", "name", "namespace")
    assume(tuple(a[k] for k in identity) != tuple(b[k] for k in identity))
    # Names and namespaces are DNS labels, so '-' joins are ambiguous: a-b/c and a/b-c. The planner must cope.
    assume(f"{a['name']}-{a['namespace']}" != f"{b['name']}-{b['namespace']}")

    assert port_name(a) != port_name(b)


# --- The planner --------------------------------------------------------------------------------------------------

PORTS = st.sampled_from([80, 443, 8443])
SETTINGS = GatewaySettings()


@st.composite
def gateways(draw) -> tuple[dict[str, Any], list[DesiredService]]:
    """A live Gateway with the platform team's own (unmanaged) servers, and the services that want in."""
    unmanaged: list[dict[str, Any]] = []
    for index, (spec, _) in enumerate(draw(st.lists(specs(ports=PORTS), max_size=3))):
        server = render_server({**spec, "name": f"plat{index}"}, SETTINGS)
        if not validation.merge_clashes([*unmanaged, server], gateway_name="gw", namespace="istio-system"):
            unmanaged.append(server)
    desired = [
        DesiredService(service_id=f"svc-{i}", team="payments", revision=1, spec=spec, material=material)
        for i, (spec, material) in enumerate(draw(st.lists(specs(ports=PORTS), max_size=6)))
    ]
    return _gateway(unmanaged), desired


def _gateway(servers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "istio-system", "resourceVersion": "1"},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers},
    }


def _first_plan(live: dict[str, Any], desired: list[DesiredService]) -> Plan:
    # Every secret the services own was read, and is missing: the first run creates them.
    facts = Facts(secrets={(SETTINGS.secret_namespace, secret_name(d.spec)): None for d in desired})
    facts.secrets |= {(d.spec["namespace"], secret_name(d.spec)): None for d in desired}
    return plan_gateway(live=live, desired=desired, settings=SETTINGS, facts=facts)


def _apply(live: dict[str, Any], plan: Plan) -> tuple[dict[str, Any], Facts]:
    """What the cluster holds once the worker carried the plan out, and what the portal recorded."""
    written = copy.deepcopy(plan.gateway) if plan.gateway is not None else copy.deepcopy(live)
    secrets = {(op.namespace, op.name): op.body for op in plan.secret_ops if op.action in ("create", "update")}
    return written, Facts(
        secrets=secrets,
        recorded_secrets=plan.secrets_record,
        recorded_servers=frozenset(plan.managed_names),
        recorded_digest=plan.managed_digest,
    )


@PROPERTIES
@given(gateways())
def test_planning_again_after_applying_a_plan_changes_nothing(gateway):
    live, desired = gateway
    first = _first_plan(live, desired)
    applied, facts = _apply(live, first)

    again = plan_gateway(live=applied, desired=desired, settings=SETTINGS, facts=facts)

    assert again.gateway is None
    assert again.servers_diff == {"added": [], "removed": [], "changed": []}
    assert [op.action for op in again.secret_ops if op.action != "keep"] == []
    assert again.outcomes == first.outcomes
    assert not again.drift


@PROPERTIES
@given(gateways())
def test_the_planner_keeps_every_unmanaged_server_in_order(gateway):
    live, desired = gateway
    unmanaged = live["spec"]["servers"]

    plan = _first_plan(live, desired)

    managed = set(plan.managed_names)
    assert [s for s in plan.servers if server_name(s) not in managed] == unmanaged
    assert plan.servers[: len(unmanaged)] == unmanaged


@PROPERTIES
@given(gateways())
def test_the_planner_never_emits_duplicate_port_names_clashing_listeners_or_shared_secrets(gateway):
    live, desired = gateway
    unmanaged = live["spec"]["servers"]

    plan = _first_plan(live, desired)

    names = [server_name(s) for s in plan.servers]
    assert len(names) == len(set(names))
    clashes = validation.merge_clashes(plan.servers, gateway_name="gw", namespace="istio-system")
    managed_paths = {f"spec.servers[{i}]" for i in range(len(unmanaged), len(plan.servers))}
    assert [issue.message for issue in clashes if issue.path in managed_paths] == []
    secrets = [op.key for op in plan.secret_ops if op.action != "delete"]
    assert len(secrets) == len(set(secrets)), "two services would write the same Secret"
    assert set(plan.outcomes) == {d.service_id for d in desired}


def test_two_services_whose_names_join_alike_never_share_a_secret():
    """`a-b` in namespace `c` and `a` in `b-c` both map to Secret `a-b-c-secret`: one team could overwrite the
    other's certificate. Different protocols give different port names, so only the Secret collides."""
    first = _tls_service("svc-1", "a-b", "c", "HTTPS", "first.example.com")
    second = _tls_service("svc-2", "a", "b-c", "TLS", "second.example.com")

    plan = _first_plan(_gateway([]), [first, second])

    assert [op.key for op in plan.secret_ops] == ["istio-system/a-b-c-secret"]
    assert plan.secret_ops[0].service_id == "svc-1"
    assert plan.outcomes["svc-2"].state == "rejected"
    assert "a-b-c-secret" in plan.outcomes["svc-2"].message


def _tls_service(service_id: str, name: str, namespace: str, protocol: str, host: str) -> DesiredService:
    spec = {
        "name": name,
        "namespace": namespace,
        "traffic_type": "ingress",
        "hosts": [host],
        "port": 443,
        "protocol": protocol,
        "mode": "SIMPLE",
        "tls_options": {"tls_secret": {"sha256_fingerprint": "ab" * 32}},
        "https_redirect": False,
        "min_protocol_version": None,
        "max_protocol_version": None,
        "clusters": [],
        "cluster_selector": None,
        "ticket": "",
    }
    material = {"cert": f"CERT {service_id}", "key": f"KEY {service_id}", "ca_cert": None}
    return DesiredService(service_id=service_id, team="payments", revision=1, spec=spec, material=material)


@PROPERTIES
@given(specs(), st.booleans(), st.sampled_from(["istio-system", "gateways"]))
def test_a_stored_rendering_is_the_rendering_of_every_cluster(spec_material, scoped, secret_namespace):
    """Render once: the block a revision stores, with the per-cluster transform, is what rendering gives there;
    the stored Secret digest is that of the Secret rendered for any secret namespace."""
    from services.rendering import render_revision, render_secret, scoped_server, secret_digest

    spec, material = spec_material
    settings_ = GatewaySettings(namespace_scoped_hosts=scoped, secret_namespace=secret_namespace)
    stored = render_revision(spec, material, service_id="sid", team="payments")
    assert scoped_server(stored.block, spec, settings_) == render_server(spec, settings_)
    secret = render_secret(spec, material, settings_, service_id="sid", team="payments")
    assert stored.secret_digest == (secret_digest(secret) if secret else "")
