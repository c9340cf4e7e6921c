"""What a list or a create reads instead of every service: the Gateway tallies behind the quotas and the byte budget
(services.tallies), the teams' service counts (TeamServiceCount, kept by triggers) behind a list's count and the
service quota, and the host index behind the conflict check (GatewayServiceHost)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from clusters.actions import cluster_update
from clusters.models import Cluster
from services import tallies
from services.actions import remove_finished_services
from services.models import (
    GatewayService,
    GatewayServiceHost,
    GatewayServiceRevision,
    GatewayTally,
    Team,
    TeamServiceCount,
)
from services.rendering import block_bytes
from tests.factories import api_client, http_service, make_cluster, make_team, make_user, service_spec

URL = "/api/v1/gateway-services/"


def detail(service: dict) -> str:
    return f"{URL}{service['id']}/"


def assert_tallies_match_a_recount() -> None:
    """Every stored tally is what counting the live services from scratch gives."""
    stored = list(GatewayTally.objects.select_related("cluster"))
    assert stored
    for tally in stored:
        teams, total = tallies.count(tally.cluster, tally.traffic_type)
        assert (tally.teams, tally.total_bytes) == (teams, total), tally


@pytest.fixture
def world():
    make_cluster("dev", labels={"env": "dev"})
    make_cluster("prod", labels={"env": "prod"}, requires_approval=True)
    alice, bob = make_user("alice"), make_user("bob")
    make_team("payments", members=[alice])
    make_team("search", members=[bob])
    return api_client(alice), api_client(bob), api_client(make_user("root", platform=True))


@pytest.mark.django_db
def test_tallies_match_a_recount_after_every_kind_of_write(world):
    alice, bob, root = world
    both = alice.post(URL, http_service(name="both", clusters=["dev", "prod"]), format="json").json()
    assert both["approval"] == "pending"
    assert_tallies_match_a_recount()

    hosts = ["search.search.example.com"]
    selected = bob.post(
        URL,
        http_service(name="find", namespace="search", hosts=hosts, clusters=[], cluster_selector={"env": "dev"}),
        format="json",
    ).json()
    assert_tallies_match_a_recount()

    more = ["both.payments.example.com", "www.both.payments.example.com"]
    assert alice.patch(detail(both), {"hosts": more}, format="json").status_code == 200  # pending again on prod
    assert_tallies_match_a_recount()
    assert root.post(f"{detail(both)}approve/", {}, format="json").status_code == 200
    assert_tallies_match_a_recount()

    assert alice.patch(detail(both), {"hosts": more[:1]}, format="json").status_code == 200
    assert root.post(f"{detail(both)}reject/", {}, format="json").status_code == 200
    assert_tallies_match_a_recount()

    assert bob.delete(detail(selected)).status_code == 202  # ungated only: removed at once
    assert_tallies_match_a_recount()
    assert alice.delete(detail(both)).status_code == 202  # runs on a gated cluster: the removal awaits approval
    assert alice.get(detail(both)).json()["approval"] == "pending"
    assert_tallies_match_a_recount()
    assert root.post(f"{detail(both)}approve/", {}, format="json").status_code == 200
    assert_tallies_match_a_recount()
    assert set(GatewayTally.objects.values_list("total_bytes", flat=True)) == {0}


@pytest.mark.django_db
def test_a_tally_is_recounted_when_its_clusters_labels_change():
    dev = make_cluster("dev", labels={"env": "dev"})
    make_cluster("web", labels={"tier": "web"})
    alice = make_user("alice")
    make_team("payments", members=[alice])
    Team.objects.update(max_hosts_per_gateway=2)
    client = api_client(alice)

    def service(name: str, **overrides) -> dict:
        return http_service(name=name, hosts=[f"{name}.payments.example.com"], **overrides)

    assert client.post(URL, service("zero", clusters=["dev"]), format="json").status_code == 201
    selector = service("one", clusters=[], cluster_selector={"tier": "web"})
    assert client.post(URL, selector, format="json").status_code == 201
    # The selector lands on dev once dev carries its label: dev's Gateway then holds two of the team's hosts.
    cluster_update(cluster=dev, labels={"env": "dev", "tier": "web"})

    refused = client.post(URL, service("two", clusters=["dev"]), format="json")

    assert refused.status_code == 400 and list(refused.json()) == ["hosts"], refused.content
    assert "3 hosts" in refused.json()["hosts"][0]
    cluster_update(cluster=Cluster.objects.get(pk=dev.pk), labels={"env": "dev"})
    assert client.post(URL, service("two", clusters=["dev"]), format="json").status_code == 201
    assert_tallies_match_a_recount()


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_two_teams_cannot_both_squeeze_past_the_gateway_byte_budget(settings, monkeypatch):
    dev = make_cluster("dev")
    alice, bob = make_user("alice"), make_user("bob")
    make_team("payments", members=[alice], domains=["example.com"])
    make_team("search", members=[bob], domains=["example.com"])
    Team.objects.update(gateway_budget_share=1.0)
    one = block_bytes(service_spec("app", hosts=["a.example.com"]))
    settings.GATEWAY_BYTE_BUDGET = one * 3 // 2  # one block fits, two do not
    with transaction.atomic():
        tallies.lock([dev], "ingress")  # the Gateway's tally exists (empty): both requests read the same row
    read = tallies.usages

    def slow_usages(*args, **kwargs):
        found = read(*args, **kwargs)
        time.sleep(0.5)  # long enough for the other request to read the tally too, were it not locked
        return found

    monkeypatch.setattr(tallies, "usages", slow_usages)
    barrier = threading.Barrier(2)

    def create(user, namespace: str, port: int) -> int:
        try:
            barrier.wait(timeout=10)
            # Different teams and ports: no port lock or team row serializes them, the Gateway's tally must.
            payload = http_service(name="app", namespace=namespace, hosts=[f"{namespace}.example.com"], port=port)
            return api_client(user).post(URL, {**payload, "clusters": ["dev"]}, format="json").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = sorted(pool.map(create, [alice, bob], ["payments", "search"], [80, 8080]))

    assert codes == [201, 400]
    assert GatewayService.objects.count() == 1


@pytest.mark.django_db
def test_the_host_index_follows_the_current_revisions_hosts(world):
    alice, bob, _ = world
    hosts = ["A.payments.example.com.", "b.payments.example.com"]
    app = alice.post(URL, http_service(name="app", hosts=hosts, clusters=["dev"]), format="json").json()
    indexed = GatewayServiceHost.objects.filter(service_id=app["id"])
    assert sorted(indexed.values_list("host", "reversed_host")) == [
        ("a.payments.example.com", "moc.elpmaxe.stnemyap.a"),
        ("b.payments.example.com", "moc.elpmaxe.stnemyap.b"),
    ]

    assert alice.patch(detail(app), {"hosts": ["c.payments.example.com"]}, format="json").status_code == 200

    assert list(indexed.values_list("host", flat=True)) == ["c.payments.example.com"]
    shop = make_user("shop")
    make_team("shop", members=[shop], domains=["payments.example.com"], allow_wildcards=True)
    other = api_client(shop)
    free = http_service(name="free", namespace="shop", hosts=["a.payments.example.com"], clusters=["dev"])
    assert other.post(URL, free, format="json").status_code == 201
    taken = http_service(name="taken", namespace="shop", hosts=["C.payments.example.com"], clusters=["dev"])
    assert other.post(URL, taken, format="json").status_code == 400
    # A wildcard finds the hosts under it through the reversed host.
    wildcard = http_service(name="wild", namespace="shop", hosts=["*.payments.example.com"], clusters=["dev"])
    refused = other.post(URL, wildcard, format="json")
    assert refused.status_code == 400 and "team payments" in str(refused.json()), refused.content


@pytest.mark.django_db
def test_rebuild_indexes_services_written_in_bulk():
    team = make_team("payments")
    GatewayService.objects.bulk_create(
        [
            GatewayService(name="a", team=team, namespace="payments", traffic_type="ingress", hosts_index="|x.io|"),
            GatewayService(name="b", team=team, namespace="payments", traffic_type="ingress", hosts_index="|Y.io.|"),
        ]
    )
    assert not GatewayServiceHost.objects.exists()

    GatewayServiceHost.rebuild(GatewayService.objects.all())

    assert sorted(GatewayServiceHost.objects.values_list("service__name", "host")) == [("a", "x.io"), ("b", "y.io")]


def assert_counts_match_a_count() -> None:
    expected = {
        team.pk: (team.services.count(), team.services.filter(deleting_at__isnull=True).count())
        for team in Team.objects.all()
    }
    kept = {row.team_id: (row.services, row.live) for row in TeamServiceCount.objects.all()}
    assert {pk: kept.get(pk, (0, 0)) for pk in expected} == expected
    assert set(kept) <= set(expected)


@pytest.mark.django_db
def test_team_service_counts_follow_every_write_whoever_makes_it(world):
    alice, bob, root = world
    payments, search = Team.objects.get(slug="payments"), Team.objects.get(slug="search")
    for name in ("one", "two", "three"):
        payload = http_service(name=name, hosts=[f"{name}.payments.example.com"], clusters=["dev"])
        assert alice.post(URL, payload, format="json").status_code == 201
    bulk = GatewayService.objects.bulk_create(
        [GatewayService(name=f"bulk{i}", team=search, namespace="search", traffic_type="ingress") for i in range(4)]
    )
    revisions = GatewayServiceRevision.objects.bulk_create(
        [GatewayServiceRevision(service=s, number=1, spec=service_spec(s.name, namespace="search")) for s in bulk]
    )
    for service, revision in zip(bulk, revisions, strict=True):
        service.current_revision = service.approved_revision = revision
    GatewayService.objects.bulk_update(bulk, ["current_revision", "approved_revision"])
    assert_counts_match_a_count()
    assert TeamServiceCount.objects.get(team=payments).live == 3

    one = GatewayService.objects.get(name="one")
    assert alice.delete(f"{URL}{one.pk}/").status_code == 202  # being deleted: still listed, no longer live
    assert_counts_match_a_count()
    assert alice.get(URL).json()["count"] == 3
    assert root.get(URL).json()["count"] == 7
    assert bob.get(URL).json()["count"] == 4

    one.statuses.all().delete()
    remove_finished_services([str(one.pk)])
    GatewayService.objects.filter(name="bulk0").update(team=payments, namespace="payments")
    GatewayService.objects.filter(name="bulk1").delete()
    GatewayService.objects.get(name="two").save()  # a full save names every column and changes no count
    assert_counts_match_a_count()
    assert [alice.get(URL).json()["count"], bob.get(URL).json()["count"]] == [3, 2]
    assert alice.get(URL, {"namespace": "payments"}).json()["count"] == 3  # filtered: counted on the services
