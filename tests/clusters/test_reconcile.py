"""The pure planner: no database, no cluster."""

from __future__ import annotations

import copy
from typing import Any

from clusters.reconcile import (
    MAX_GATEWAY_BYTES,
    DesiredService,
    Facts,
    Outcome,
    gateway_size,
    managed_names,
    plan_gateway,
    reads_needed,
    secret_digest,
)
from services.rendering import MANAGED_SERVERS_ANNOTATION, GatewaySettings
from tests.certs import b64, make_cert
from tests.factories import service_spec

SETTINGS = GatewaySettings(namespace_scoped_hosts=True, secret_namespace="istio-system")
PLATFORM_HTTP = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
PLATFORM_HTTPS = {
    "port": {"number": 443, "name": "https-platform", "protocol": "HTTPS"},
    "hosts": ["*/portal.example.com"],
    "tls": {"mode": "SIMPLE", "credentialName": "platform-cert"},
}


def gateway(*servers: dict[str, Any], managed: list[str] | None = None) -> dict[str, Any]:
    annotations = {"team": "platform"}
    if managed:
        annotations[MANAGED_SERVERS_ANNOTATION] = ",".join(managed)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": "ingress-gateway",
            "namespace": "istio-system",
            "resourceVersion": "7",
            "annotations": annotations,
        },
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": list(servers)},
    }


def spec(name: str = "checkout", **overrides: Any) -> dict[str, Any]:
    return service_spec(name, **{"clusters": ["prod"], **overrides})


def service(sid: str = "s1", revision: int = 1, material: dict | None = None, **overrides: Any) -> DesiredService:
    return DesiredService(sid, "payments", revision, spec(**overrides), material)


def tls_service(sid: str = "s1", name: str = "checkout", mode: str = "SIMPLE") -> DesiredService:
    leaf = make_cert(dns_names=[f"{name}.payments.example.com"])
    return service(
        sid,
        name=name,
        port=443,
        protocol="HTTPS",
        mode=mode,
        tls_options={"tls_secret": {}},
        material={"cert": leaf.cert_pem, "key": leaf.key_pem, "ca_cert": None},
    )


def test_given_platform_servers_when_a_service_is_added_then_they_are_preserved_in_order_before_it():
    live = gateway(PLATFORM_HTTP, PLATFORM_HTTPS)
    plan = plan_gateway(live=live, desired=[service()], settings=SETTINGS, facts=Facts())

    servers = plan.gateway["spec"]["servers"]
    assert servers[:2] == [PLATFORM_HTTP, PLATFORM_HTTPS]
    assert servers[2]["port"]["name"] == "http-checkout-payments"
    assert managed_names(plan.gateway) == ["http-checkout-payments"]
    assert plan.gateway["metadata"]["annotations"]["team"] == "platform"
    assert plan.gateway["metadata"]["resourceVersion"] == "7"
    assert plan.added == ["http-checkout-payments"]
    assert plan.outcomes["s1"] == Outcome("applied", "", 1)


def test_given_the_gateway_already_converged_then_nothing_is_written():
    first = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[service()], settings=SETTINGS, facts=Facts())
    again = plan_gateway(live=first.gateway, desired=[service()], settings=SETTINGS, facts=Facts())
    assert again.gateway is None
    assert (again.added, again.removed, again.changed) == ([], [], [])


def test_given_a_managed_server_no_longer_desired_then_it_is_removed_and_unmanaged_ones_stay():
    live = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[service()], settings=SETTINGS, facts=Facts()).gateway
    plan = plan_gateway(live=live, desired=[], settings=SETTINGS, facts=Facts())
    assert plan.gateway["spec"]["servers"] == [PLATFORM_HTTP]
    assert MANAGED_SERVERS_ANNOTATION not in plan.gateway["metadata"]["annotations"]
    assert plan.removed == ["http-checkout-payments"]


def test_http_catch_all_on_port_80_is_no_clash_for_plain_http():
    plan = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[service()], settings=SETTINGS, facts=Facts())
    assert plan.outcomes["s1"].state == "applied"


def test_same_port_name_as_an_unmanaged_server_is_rejected():
    unmanaged = {"port": {"number": 8080, "name": "http-checkout-payments", "protocol": "HTTP"}, "hosts": ["*"]}
    plan = plan_gateway(live=gateway(unmanaged), desired=[service()], settings=SETTINGS, facts=Facts())
    assert plan.outcomes["s1"].state == "rejected"
    assert "port name 'http-checkout-payments'" in plan.outcomes["s1"].message
    assert plan.gateway is None


def test_tls_server_with_an_identical_host_on_the_same_port_is_rejected():
    unmanaged = copy.deepcopy(PLATFORM_HTTPS)
    unmanaged["hosts"] = ["*/checkout.payments.example.com"]
    plan = plan_gateway(
        live=gateway(unmanaged),
        desired=[tls_service()],
        settings=SETTINGS,
        facts=Facts(secrets={("istio-system", "checkout-payments-secret"): None}),
    )
    assert plan.outcomes["s1"].state == "rejected"
    assert "checkout.payments.example.com" in plan.outcomes["s1"].message
    assert plan.secret_ops == []


def test_protocols_that_cannot_share_a_port_are_rejected():
    tcp = {"port": {"number": 80, "name": "tcp-legacy", "protocol": "TCP"}, "hosts": ["*"]}
    plan = plan_gateway(live=gateway(tcp), desired=[service()], settings=SETTINGS, facts=Facts())
    assert plan.outcomes["s1"].state == "rejected"
    assert "cannot share port 80" in plan.outcomes["s1"].message


def test_between_two_services_the_older_one_wins_a_clash():
    first = service("s1", name="a", port=9000, protocol="TCP", hosts=["a.payments.example.com"])
    second = service("s2", name="b", port=9000, protocol="TCP", hosts=["b.payments.example.com"])
    plan = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[first, second], settings=SETTINGS, facts=Facts())
    assert plan.outcomes["s1"].state == "applied"
    assert plan.outcomes["s2"].state == "rejected"
    assert "service payments/a" in plan.outcomes["s2"].message


def test_a_new_tls_secret_is_created_in_the_gateway_secret_namespace():
    item = tls_service()
    reads, namespaces = reads_needed([item], SETTINGS, {}, verify_all=False)
    assert reads == [("istio-system", "checkout-payments-secret")]
    assert namespaces == []
    plan = plan_gateway(
        live=gateway(PLATFORM_HTTP), desired=[item], settings=SETTINGS, facts=Facts(secrets={reads[0]: None})
    )
    [op] = plan.secret_ops
    assert (op.action, op.namespace, op.name) == ("create", "istio-system", "checkout-payments-secret")
    assert plan.secrets_record["istio-system/checkout-payments-secret"]["digest"] == op.digest
    assert plan.gateway["spec"]["servers"][-1]["tls"]["credentialName"] == "checkout-payments-secret"


def test_a_passthrough_secret_goes_to_the_service_namespace_which_must_exist():
    item = tls_service(mode="PASSTHROUGH")
    reads, namespaces = reads_needed([item], SETTINGS, {}, verify_all=False)
    assert reads == [("payments", "checkout-payments-secret")]
    assert namespaces == ["payments"]
    facts = Facts(secrets={reads[0]: None}, namespaces={"payments": False})
    plan = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[item], settings=SETTINGS, facts=facts)
    assert plan.outcomes["s1"].state == "rejected"
    assert "namespace 'payments' does not exist" in plan.outcomes["s1"].message


def test_an_unchanged_recorded_secret_is_not_read_and_not_rewritten():
    item = tls_service()
    first = plan_gateway(
        live=gateway(PLATFORM_HTTP),
        desired=[item],
        settings=SETTINGS,
        facts=Facts(secrets={("istio-system", "checkout-payments-secret"): None}),
    )
    reads, _ = reads_needed([item], SETTINGS, first.secrets_record, verify_all=False)
    assert reads == []
    again = plan_gateway(
        live=first.gateway, desired=[item], settings=SETTINGS, facts=Facts(recorded_secrets=first.secrets_record)
    )
    assert again.secret_ops == []
    assert again.gateway is None


def test_a_rotated_certificate_updates_the_secret_with_its_resource_version():
    old, new = tls_service(), tls_service()
    live_secret = copy.deepcopy(
        plan_gateway(
            live=gateway(),
            desired=[old],
            settings=SETTINGS,
            facts=Facts(secrets={("istio-system", "checkout-payments-secret"): None}),
        )
        .secret_ops[0]
        .body
    )
    live_secret["metadata"]["resourceVersion"] = "42"
    key = ("istio-system", "checkout-payments-secret")
    plan = plan_gateway(
        live=gateway(PLATFORM_HTTP), desired=[new], settings=SETTINGS, facts=Facts(secrets={key: live_secret})
    )
    [op] = plan.secret_ops
    assert op.action == "update"
    assert op.body["metadata"]["resourceVersion"] == "42"
    assert op.digest != secret_digest(live_secret)


def test_a_secret_not_created_by_the_portal_is_never_overwritten():
    foreign = {"metadata": {"name": "checkout-payments-secret", "labels": {}}, "type": "kubernetes.io/tls", "data": {}}
    facts = Facts(secrets={("istio-system", "checkout-payments-secret"): foreign})
    plan = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[tls_service()], settings=SETTINGS, facts=facts)
    assert plan.outcomes["s1"].state == "rejected"
    assert "not created by the portal" in plan.outcomes["s1"].message


def test_secrets_of_removed_services_are_deleted():
    recorded = {"istio-system/old-payments-secret": {"digest": "x", "service": "gone"}}
    plan = plan_gateway(
        live=gateway(PLATFORM_HTTP), desired=[], settings=SETTINGS, facts=Facts(recorded_secrets=recorded)
    )
    [op] = plan.secret_ops
    assert (op.action, op.key) == ("delete", "istio-system/old-payments-secret")
    assert plan.secrets_record == {}


def ref_service(secret_name: str = "shop-cert") -> DesiredService:
    return service(
        port=443, protocol="HTTPS", mode="SIMPLE", tls_options={"tls_secret_ref": {"secret_name": secret_name}}
    )


def test_tls_secret_ref_missing_is_rejected():
    facts = Facts(secrets={("istio-system", "shop-cert"): None})
    plan = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[ref_service()], settings=SETTINGS, facts=facts)
    assert plan.outcomes["s1"].state == "rejected"
    assert "istio-system/shop-cert does not exist" in plan.outcomes["s1"].message


def test_tls_secret_ref_with_a_key_that_does_not_match_is_rejected():
    one, other = make_cert(), make_cert()
    secret = {"type": "kubernetes.io/tls", "data": {"tls.crt": one.cert_b64, "tls.key": other.key_b64}}
    facts = Facts(secrets={("istio-system", "shop-cert"): secret})
    plan = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[ref_service()], settings=SETTINGS, facts=facts)
    assert plan.outcomes["s1"].state == "rejected"
    assert "does not match" in plan.outcomes["s1"].message


def test_tls_secret_ref_that_is_usable_is_applied():
    leaf = make_cert()
    secret = {"type": "kubernetes.io/tls", "data": {"tls.crt": leaf.cert_b64, "tls.key": b64(leaf.key_pem)}}
    facts = Facts(secrets={("istio-system", "shop-cert"): secret})
    plan = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[ref_service()], settings=SETTINGS, facts=facts)
    assert plan.outcomes["s1"].state == "applied"
    assert plan.gateway["spec"]["servers"][-1]["tls"]["credentialName"] == "shop-cert"


def test_a_block_that_makes_the_gateway_invalid_is_left_out_with_the_reason():
    bad = service(hosts=["not_valid.payments.example.com"])
    plan = plan_gateway(
        live=gateway(PLATFORM_HTTP), desired=[bad, service("s2", name="ok")], settings=SETTINGS, facts=Facts()
    )
    assert plan.outcomes["s1"].state == "rejected"
    assert "merged Gateway would be invalid" in plan.outcomes["s1"].message
    assert plan.outcomes["s2"].state == "applied"
    assert managed_names(plan.gateway) == ["http-ok-payments"]


def test_over_one_mebibyte_the_newest_blocks_are_left_out_and_the_rest_is_written():
    many = [
        DesiredService(
            f"s{i}",
            "payments",
            1,
            spec(name=f"svc{i}", hosts=[f"h{j}.svc{i}.payments.example.com" for j in range(40)]),
            created=float(1000 - i if i % 2 else i),  # creation order differs from precedence order
        )
        for i in range(600)
    ]
    plan = plan_gateway(live=gateway(PLATFORM_HTTP), desired=many, settings=SETTINGS, facts=Facts())

    assert plan.gateway is not None
    assert gateway_size(plan.gateway) <= MAX_GATEWAY_BYTES
    left_out = {sid for sid, o in plan.outcomes.items() if o.state == "rejected"}
    applied = {sid for sid, o in plan.outcomes.items() if o.state == "applied"}
    assert left_out and applied and len(left_out) + len(applied) == 600
    created = {item.service_id: item.created for item in many}
    assert min(created[sid] for sid in left_out) >= max(created[sid] for sid in applied)
    assert "1 MiB object limit" in plan.outcomes[next(iter(left_out))].message


def test_drift_is_detected_against_what_was_recorded():
    written = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[service()], settings=SETTINGS, facts=Facts())
    tampered = copy.deepcopy(written.gateway)
    tampered["spec"]["servers"][-1]["hosts"] = ["payments/evil.example.com"]
    facts = Facts(recorded_servers=frozenset(written.managed_names), recorded_digest=written.managed_digest)
    plan = plan_gateway(live=tampered, desired=[service()], settings=SETTINGS, facts=facts)
    assert plan.drift
    assert plan.changed == ["http-checkout-payments"]
    assert plan.gateway["spec"]["servers"] == written.gateway["spec"]["servers"]


def test_recorded_servers_stay_managed_when_the_annotation_is_dropped():
    written = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[service()], settings=SETTINGS, facts=Facts())
    stripped = copy.deepcopy(written.gateway)
    del stripped["metadata"]["annotations"][MANAGED_SERVERS_ANNOTATION]
    facts = Facts(recorded_servers=frozenset(written.managed_names), recorded_digest=written.managed_digest)
    plan = plan_gateway(live=stripped, desired=[service()], settings=SETTINGS, facts=facts)
    assert plan.outcomes["s1"].state == "applied"
    assert managed_names(plan.gateway) == ["http-checkout-payments"]


def test_excluded_services_keep_their_outcome_and_are_left_out():
    failed = Outcome("failed", "secret x: forbidden", 1)
    plan = plan_gateway(
        live=gateway(PLATFORM_HTTP), desired=[service()], settings=SETTINGS, facts=Facts(), excluded={"s1": failed}
    )
    assert plan.outcomes["s1"] == failed
    assert plan.gateway is None


def test_an_adopted_server_already_right_is_not_rewritten_just_to_list_it():
    written = plan_gateway(live=gateway(PLATFORM_HTTP), desired=[service()], settings=SETTINGS, facts=Facts())
    unlisted = copy.deepcopy(written.gateway)
    del unlisted["metadata"]["annotations"][MANAGED_SERVERS_ANNOTATION]
    names = frozenset(written.managed_names)

    adopted = plan_gateway(
        live=unlisted,
        desired=[service()],
        settings=SETTINGS,
        facts=Facts(recorded_servers=names, adopted_servers=names),
    )
    dropped = plan_gateway(live=unlisted, desired=[service()], settings=SETTINGS, facts=Facts(recorded_servers=names))

    assert adopted.gateway is None
    assert adopted.outcomes["s1"].state == "applied"
    assert managed_names(dropped.gateway) == sorted(names)  # a dropped annotation is healed
