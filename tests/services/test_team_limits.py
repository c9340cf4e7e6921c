"""A team's limits: quotas and the Gateway byte budget (services.quotas), allowed clusters (services.targeting),
granted secrets; checked when a request is made."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection

from clusters.desired import collect_desired
from services import quotas
from services.models import DEFAULT_GATEWAY_BUDGET_SHARE, DEFAULT_MAX_SERVICES, GatewayService, Team
from services.rendering import block_bytes
from services.targeting import allowed, allowed_for
from services.validation import secret_reference_errors
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

URL = "/api/v1/gateway-services/"


def typical(i: int) -> dict:
    """One HTTPS server, two hosts, SIMPLE, with a certificate the portal stores."""
    name, ns = f"service-{i:05d}", "payments"
    return {
        "name": name,
        "namespace": ns,
        "protocol": "HTTPS",
        "port": 443,
        "mode": "SIMPLE",
        "hosts": [f"{name}.{ns}.example.com", f"www-{name}.{ns}.example.com"],
        "tls_options": {"tls_secret": {"sha256_fingerprint": "ab" * 32}},
    }


def test_the_default_budget_holds_3000_typical_services_and_no_team_can_fill_it_alone():
    assert sum(block_bytes(typical(i)) for i in range(3000)) <= settings.GATEWAY_BYTE_BUDGET
    assert DEFAULT_GATEWAY_BUDGET_SHARE < 1
    # The team defaults do not stop a team before its share does.
    assert DEFAULT_MAX_SERVICES * block_bytes(typical(0)) >= settings.GATEWAY_BYTE_BUDGET * DEFAULT_GATEWAY_BUDGET_SHARE


def test_gateway_errors_give_the_numbers_and_stay_silent_within_the_limits():
    limits = quotas.Limits(max_hosts_per_gateway=10, gateway_budget_share=0.5, gateway_byte_budget=1000)
    usage = quotas.GatewayUsage("dev", "ingress", team_hosts=8, team_bytes=400, total_bytes=900)

    assert quotas.gateway_errors(team="t", hosts=2, block_bytes=50, usages=[usage], limits=limits) == {}
    messages = quotas.gateway_errors(team="t", hosts=3, block_bytes=101, usages=[usage], limits=limits)["hosts"]
    assert len(messages) == 3
    assert "11 hosts" in messages[0] and "10 hosts" in messages[0]
    assert "501 bytes" in messages[1] and "500 bytes" in messages[1]
    assert "1001 bytes" in messages[2] and "1000 bytes" in messages[2]
    assert quotas.service_count_errors(team="t", owned=2, max_services=3) == {}
    assert "3" in quotas.service_count_errors(team="t", owned=3, max_services=3)["non_field_errors"][0]


@pytest.mark.parametrize(
    ("names", "selector", "expected"),
    [
        (None, None, ["a", "b", "c"]),
        (["a", "c"], None, ["a", "c"]),
        (None, {"env": "dev"}, ["a", "b"]),
        (["b", "c"], {"env": "dev"}, ["b"]),
        ([], None, []),
    ],
)
def test_allowed_clusters_and_selector_both_apply(names, selector, expected):
    class C:
        def __init__(self, name, labels):
            self.name, self.labels = name, labels

    clusters = [C("a", {"env": "dev"}), C("b", {"env": "dev"}), C("c", {"env": "prod"})]
    assert [c.name for c in allowed_for(clusters, names=names, selector=selector)] == expected
    assert allowed("a", {}, names=None, selector=None)


def test_a_secret_reference_gets_one_answer_for_every_refusal():
    granted = ["shared-wildcard"]
    assert secret_reference_errors("shared-wildcard", granted=granted, managed=False) == {}
    refusals = [
        secret_reference_errors(name, granted=granted, managed=managed)
        for name, managed in (("x", False), ("x", True), ("shared-wildcard", True))
    ]
    assert refusals[0] == refusals[1]
    assert str(refusals[2]).replace("shared-wildcard", "x") == str(refusals[0])


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_cannot_both_squeeze_past_the_service_quota():
    make_cluster()
    user = make_user("alice")
    make_team(members=[user])
    Team.objects.filter(slug="payments").update(max_services=1)
    barrier = threading.Barrier(2)

    def create(name: str, port: int) -> int:
        try:
            barrier.wait(timeout=10)
            # Different ports: the port lock does not serialize them, the team's row lock must.
            payload = http_service(name=name, hosts=[f"{name}.payments.example.com"], port=port)
            return api_client(user).post(URL, payload, format="json").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = sorted(pool.map(create, ["one", "two"], [80, 8080]))

    assert codes == [201, 400]
    assert GatewayService.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("owned", [0, 1])
def test_concurrent_creates_on_two_gateways_cannot_both_squeeze_past_the_service_quota(owned):
    """Nothing but the team's count serializes these: other clusters (so other Gateways' tallies), other ports."""
    make_cluster("prod-eu-1")
    make_cluster("prod-us-1")
    user = make_user("alice")
    make_team(members=[user])
    if owned:
        body = http_service(name="old", hosts=["old.payments.example.com"])
        assert api_client(user).post(URL, body, format="json").status_code == 201
    Team.objects.filter(slug="payments").update(max_services=owned + 1)
    barrier = threading.Barrier(2)

    def create(name: str, port: int, cluster: str) -> int:
        try:
            barrier.wait(timeout=10)
            payload = http_service(name=name, hosts=[f"{name}.payments.example.com"], port=port, clusters=[cluster])
            return api_client(user).post(URL, payload, format="json").status_code
        finally:
            connection.close()

    for attempt in range(3):  # each round ends with the team at its quota again
        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = sorted(pool.map(create, [f"a{attempt}", f"b{attempt}"], [80, 8080], ["prod-eu-1", "prod-us-1"]))
        assert codes == [201, 400]
        assert GatewayService.objects.count() == owned + 1
        GatewayService.objects.exclude(name="old").delete()


@pytest.mark.django_db
def test_a_selector_never_lands_on_a_cluster_the_team_may_not_use_even_one_added_later():
    make_cluster("dev", labels={"tier": "all", "stage": "dev"})
    user = make_user("alice")
    make_team(members=[user])
    Team.objects.filter(slug="payments").update(allowed_cluster_selector={"stage": "dev"})
    payload = http_service(clusters=[], cluster_selector={"tier": "all"})
    assert api_client(user).post(URL, payload, format="json").status_code == 201

    later = make_cluster("prod", labels={"tier": "all", "stage": "prod"})

    assert collect_desired(later, "ingress").items == []


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["max_services", "max_hosts_per_gateway"])
def test_a_quota_beyond_what_the_database_stores_is_a_400_naming_the_field(field):
    root = api_client(make_user("root", platform=True))
    body = {"slug": "big", "name": "Big", "namespaces": ["big"], "allowed_domains": ["big.example.com"]}

    refused = root.post("/api/v1/teams/", {**body, field: 2**31}, format="json")
    largest = root.post("/api/v1/teams/", {**body, field: 2**31 - 1}, format="json")

    assert refused.status_code == 400 and field in refused.json()
    assert largest.status_code == 201, largest.content
    assert getattr(Team.objects.get(slug="big"), field) == 2**31 - 1


@pytest.mark.django_db(transaction=True)
def test_a_batch_and_a_single_create_of_one_team_do_not_deadlock():
    """A batch (an import, an apply) creates one service after another in one transaction; a single create of the
    same team on the Gateway of the batch's next item runs between them. Both take the team's locks before any
    Gateway's (services.tallies): neither waits for the other in a cycle."""
    from django.db import transaction

    from services import actions

    make_cluster("c1")
    make_cluster("c2")
    team = make_team("payments")
    errors: list[tuple[str, str]] = []
    first_written = threading.Event()

    def create(name: str, port: int, cluster: str) -> None:
        data = http_service(name=name, port=port, clusters=[cluster], hosts=[f"{name}.payments.example.com"])
        actions.gateway_service_create(team=team, data=data)

    def batch() -> None:
        try:
            with transaction.atomic():
                create("a", 80, "c1")
                first_written.set()
                time.sleep(1.0)  # the single create takes its locks meanwhile
                create("b", 81, "c2")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(("batch", repr(exc)))
        finally:
            connection.close()

    def single() -> None:
        try:
            first_written.wait(10)
            create("c", 82, "c2")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(("single", repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=batch), threading.Thread(target=single)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(GatewayService.objects.values_list("name", flat=True)) == ["a", "b", "c"]
