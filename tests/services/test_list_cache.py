"""The service list's response cache (services.api.listcache): never another viewer's page, never older than the
last committed write, whoever made it. On real Postgres with real commits (the versions are counted at commit)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters import actions as cluster_actions
from clusters.converge import gateway_converge
from gatewayportal.models import ApiToken
from gatewayportal.roles import PLATFORM_GROUP
from services import actions
from services.api import listcache
from services.models import GatewayService, GatewayServiceStatus, ListVersion, Team
from tests.clusters.builders import sim_cluster
from tests.factories import api_client, http_service, make_cluster, make_team, make_user
from tests.services.test_api_queries import LIST_CACHED_QUERIES, LIST_MISS_QUERIES

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/gateway-services/"
FAILED = "HTTPSConnectionPool(host='10.1.2.3', port=6443): Max retries exceeded (connection refused)"


@pytest.fixture(autouse=True)
def _no_reconcile(monkeypatch):
    # Writes commit here, and a commit asks for a reconcile: no worker, no cluster behind these names.
    monkeypatch.setattr("clusters.enqueue._enqueue", lambda cluster_ids, traffic_type: None)
    caches[listcache.ALIAS].clear()
    yield
    caches[listcache.ALIAS].clear()


@pytest.fixture
def world():
    alice, bob, pat = make_user("alice"), make_user("bob"), make_user("pat", platform=True)
    payments = make_team("payments", members=[alice])
    orders = make_team("orders", members=[bob])
    make_cluster("prod-eu-1")
    make_cluster("gated", requires_approval=True)
    clients = {"alice": api_client(alice), "bob": api_client(bob), "pat": api_client(pat)}
    for i in range(3):
        body = http_service(name=f"pay{i}", hosts=[f"pay{i}.payments.example.com"])
        assert clients["alice"].post(URL, body, format="json").status_code == 201
    body = http_service(name="ord0", namespace="orders", hosts=["ord0.orders.example.com"])
    assert clients["bob"].post(URL, body, format="json").status_code == 201
    return {
        "users": {"alice": alice, "bob": bob, "pat": pat},
        "teams": {"payments": payments, "orders": orders},
        **clients,
    }


def listed(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def uncached(client, settings, **params):
    """What the list says when nothing is cached: the reference every cached answer must equal."""
    settings.LIST_CACHE_SECONDS = 0
    try:
        return listed(client, **params)
    finally:
        settings.LIST_CACHE_SECONDS = 300


def queries(client, **params) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        body = listed(client, **params)
    return len(captured.captured_queries), body


def names(body) -> list[str]:
    return [service["name"] for service in body["results"]]


def test_a_repeated_list_is_served_from_the_cache_in_two_queries(world):
    miss, first = queries(world["alice"])
    hit, again = queries(world["alice"])
    assert (miss, hit) == (LIST_MISS_QUERIES, LIST_CACHED_QUERIES)
    assert again == first
    assert names(first) == ["pay0", "pay1", "pay2"] and first["count"] == 3


def test_the_cached_answer_is_the_uncached_one_byte_for_byte(world, settings):
    for params in ({}, {"page_size": 2}, {"page": 2, "page_size": 2}, {"namespace": "payments"}):
        cached = world["alice"].get(URL, params)
        assert world["alice"].get(URL, params).content == cached.content
        settings.LIST_CACHE_SECONDS = 0
        fresh = world["alice"].get(URL, params)
        settings.LIST_CACHE_SECONDS = 300
        assert fresh.content == cached.content
        for header in ("Content-Type", "Vary", "Allow"):
            assert cached[header] == fresh[header]


# Freshness: after each write, the next list is what an uncached list says.


def test_create_update_and_delete_through_the_api_show_at_once(world, settings):
    alice = world["alice"]
    listed(alice)
    created = alice.post(URL, http_service(name="pay9", hosts=["pay9.payments.example.com"]), format="json").json()
    assert "pay9" in names(listed(alice))
    listed(alice)
    alice.patch(f"{URL}{created['id']}/", {"hosts": ["other.payments.example.com"]}, format="json")
    after_update = listed(alice)
    assert [s["hosts"] for s in after_update["results"] if s["name"] == "pay9"] == [["other.payments.example.com"]]
    assert alice.delete(f"{URL}{created['id']}/").status_code == 202
    assert listed(alice) == uncached(alice, settings) != after_update


def test_an_approval_and_a_ticket_decision_show_at_once(world, settings):
    alice, pat = world["alice"], world["pat"]
    gated = [
        alice.post(
            URL,
            http_service(name=f"gate{i}", hosts=[f"gate{i}.payments.example.com"], clusters=["gated"]),
            format="json",
        ).json()
        for i in range(2)
    ]
    assert {s["approval"] for s in listed(alice)["results"] if s["name"].startswith("gate")} == {"pending"}
    listed(pat)
    assert pat.post(f"{URL}{gated[0]['id']}/approve/", {"comment": "ok"}, format="json").status_code == 200
    # The decision a ticket delivers, as the ticketing webhook makes it (services.actions, not the API).
    revision = GatewayService.objects.get(pk=gated[1]["id"]).current_revision
    actions.revision_reject(revision=revision, comment="ticket closed")
    approvals = {s["name"]: s["approval"] for s in listed(alice)["results"]}
    assert (approvals["gate0"], approvals["gate1"]) == ("approved", "rejected")
    assert listed(pat) == uncached(pat, settings)


def test_a_reconcile_writing_status_rows_shows_at_once(world, settings, kubesim):
    cluster = sim_cluster(kubesim, "sim")
    alice = world["alice"]
    alice.post(URL, http_service(name="sim0", hosts=["sim0.payments.example.com"], clusters=["sim"]), format="json")
    before = listed(alice)
    assert [s["status"][0]["state"] for s in before["results"] if s["name"] == "sim0"] == ["pending"]
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    after = listed(alice)
    assert [s["status"][0]["state"] for s in after["results"] if s["name"] == "sim0"] == ["applied"]
    # And a status written by anything else (a bulk statement, as the worker's).
    GatewayServiceStatus.objects.filter(service__name="sim0").update(state="failed", message=FAILED)
    assert listed(alice) == uncached(alice, settings) != after


def test_a_cluster_change_and_a_team_slug_change_show_at_once(world, settings):
    alice, pat = world["alice"], world["pat"]
    before = listed(alice)
    assert before["results"][0]["server_block"]["hosts"] == ["payments/pay0.payments.example.com"]
    listed(pat)
    cluster_actions.cluster_update(cluster=make_cluster_named("prod-eu-1"), namespace_scoped_hosts=False)
    assert listed(alice)["results"][0]["server_block"]["hosts"] == ["pay0.payments.example.com"]
    assert listed(pat) == uncached(pat, settings)
    assert pat.patch("/api/v1/teams/payments/", {"slug": "pay"}, format="json").status_code == 200
    assert {s["team"] for s in listed(alice)["results"]} == {"pay"}
    assert listed(pat) == uncached(pat, settings)


def make_cluster_named(name: str):
    from clusters.models import Cluster

    return Cluster.objects.get(name=name)


def test_a_write_outside_the_api_shows_at_once(world, settings):
    alice = world["alice"]
    listed(alice)
    GatewayService.objects.filter(name="pay1").update(created_by="someone else")
    assert [s["created_by"] for s in listed(alice)["results"]][1] == "someone else"


# Isolation: a page is never served to someone who may not see it, and who may see what is read on each request.


def test_members_of_other_teams_never_get_each_others_page(world):
    assert names(listed(world["alice"])) == ["pay0", "pay1", "pay2"]
    assert names(listed(world["bob"])) == ["ord0"]
    assert names(listed(world["alice"])) == ["pay0", "pay1", "pay2"]
    assert listed(world["pat"])["count"] == 4


def test_a_member_never_gets_the_platform_view_of_a_failed_status(world, settings):
    GatewayServiceStatus.objects.filter(service__name="pay0").update(state="failed", message=FAILED)
    platform_view = listed(world["pat"], namespace="payments")
    assert platform_view["results"][0]["status"][0]["message"] == FAILED
    member_view = listed(world["alice"], namespace="payments")
    assert member_view["results"][0]["status"][0]["message"] == "unreachable"
    assert member_view == uncached(world["alice"], settings, namespace="payments")


def test_a_membership_change_takes_effect_on_the_next_request(world):
    alice, payments, orders = world["users"]["alice"], world["teams"]["payments"], world["teams"]["orders"]
    assert listed(world["alice"])["count"] == 3
    payments.members.remove(alice)
    assert listed(world["alice"])["count"] == 0
    orders.members.add(alice)
    assert names(listed(world["alice"])) == ["ord0"]
    actions.team_save(data={"members": [alice, world["users"]["bob"]]}, team=Team.objects.get(slug="payments"))
    assert listed(world["alice"])["count"] == 4


def test_a_role_change_takes_effect_on_the_next_request(world):
    alice = world["users"]["alice"]
    assert listed(world["alice"])["count"] == 3
    platform, _ = Group.objects.get_or_create(name=PLATFORM_GROUP)
    alice.groups.add(platform)
    assert listed(world["alice"])["count"] == 4
    alice.groups.remove(platform)
    assert listed(world["alice"])["count"] == 3


def test_a_revoked_token_and_a_deactivated_user_are_refused_on_the_next_request(world):
    listed(world["alice"])
    ApiToken.objects.filter(user=world["users"]["alice"]).update(revoked=True)
    assert world["alice"].get(URL).status_code == 401
    listed(world["bob"])
    world["users"]["bob"].__class__.objects.filter(username="bob").update(is_active=False)
    assert world["bob"].get(URL).status_code == 401


def test_links_follow_the_host_and_scheme_asked(world):
    plain = listed(world["alice"], page_size=2)
    assert plain["next"].startswith("http://testserver/")
    secure = world["alice"].get(URL, {"page_size": 2}, secure=True).json()
    assert secure["next"].startswith("https://testserver/")
    other = world["alice"].get(URL, {"page_size": 2}, HTTP_HOST="localhost").json()
    assert other["next"].startswith("http://localhost/")


def test_only_json_is_cached_and_each_media_type_apart(world):
    compact = world["alice"].get(URL, HTTP_ACCEPT="application/json").content
    indented = world["alice"].get(URL, HTTP_ACCEPT="application/json; indent=2").content
    assert indented != compact and indented.startswith(b"{\n")
    html = world["alice"].get(URL, HTTP_ACCEPT="text/html")
    assert html["Content-Type"].startswith("text/html") and b"alice" in html.content


def test_nothing_is_cached_where_the_database_keeps_no_versions(world, monkeypatch):
    monkeypatch.setattr(ListVersion, "kept", staticmethod(lambda: False))
    first, _ = queries(world["alice"])
    again, _ = queries(world["alice"])
    assert first == again == LIST_MISS_QUERIES - 1


def test_versions_are_counted_once_per_commit_in_scope_order(world):
    def versions():
        return dict(ListVersion.objects.values_list("scope", "version"))

    payments, orders = world["teams"]["payments"], world["teams"]["orders"]
    before = versions()
    GatewayService.objects.update(created_by="bulk")  # one statement over both teams
    after = versions()
    assert after[payments.pk] == before[payments.pk] + 1 and after[orders.pk] == before[orders.pk] + 1
    assert after[ListVersion.CLUSTERS] == before[ListVersion.CLUSTERS]


def test_two_transactions_changing_two_teams_in_opposite_orders_both_commit(world):
    # Counted at each commit in scope order: neither waits for the other's version row while holding its own.
    import threading

    from django.db import transaction

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(first: str, second: str) -> None:
        try:
            with transaction.atomic():
                GatewayService.objects.filter(name=first).update(created_by="one")
                barrier.wait(timeout=10)
                GatewayService.objects.filter(name=second).update(created_by="two")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    body = http_service(name="ord1", namespace="orders", hosts=["ord1.orders.example.com"])
    assert world["bob"].post(URL, body, format="json").status_code == 201
    before = dict(ListVersion.objects.values_list("scope", "version"))
    threads = [threading.Thread(target=write, args=pair) for pair in (("pay0", "ord0"), ("ord1", "pay1"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    after = dict(ListVersion.objects.values_list("scope", "version"))
    payments, orders = world["teams"]["payments"].pk, world["teams"]["orders"].pk
    assert after[payments] == before[payments] + 2 and after[orders] == before[orders] + 2


def test_a_membership_change_during_a_list_never_leaves_a_page_under_another_members_key(world, monkeypatch):
    """carol's key is read for {payments}; she joins orders before her page is read. The page must be the one of
    {payments} (the key's), or alice, who shares that key, would be served orders' services."""
    from services import selectors

    alice, bob = world["users"]["alice"], world["users"]["bob"]
    carol = make_user("carol")
    world["teams"]["payments"].members.add(carol)
    real = selectors.list_versions

    def joining_meanwhile(user):
        versions = real(user)
        if user.username == "carol":
            world["teams"]["orders"].members.add(carol)  # committed between the key's read and the page's
        return versions

    monkeypatch.setattr(selectors, "list_versions", joining_meanwhile)
    assert names(listed(api_client(carol))) == ["pay0", "pay1", "pay2"]
    monkeypatch.setattr(selectors, "list_versions", real)
    assert names(listed(world["alice"])) == ["pay0", "pay1", "pay2"]
    assert names(listed(api_client(carol))) == ["ord0", "pay0", "pay1", "pay2"]
    assert names(listed(world["bob"])) == ["ord0"] and alice.pk != bob.pk


def test_only_the_lists_own_parameters_are_cached_and_large_pages_are_not_kept(world):
    cache = caches[listcache.ALIAS]
    cache.clear()
    for junk in range(3):
        assert names(listed(world["alice"], junk=junk)) == ["pay0", "pay1", "pay2"]
    assert names(listed(world["alice"], page_size=2, page=1, **{"team": "payments"})) == ["pay0", "pay1"]
    kept = list(cache._cache)  # LocMemCache: the keys it holds
    assert len(kept) == 1, "unknown parameters made entries"
    original = listcache.MAX_BYTES
    try:
        listcache.MAX_BYTES = 10
        cache.clear()
        assert names(listed(world["alice"])) == ["pay0", "pay1", "pay2"]
        assert list(cache._cache) == []
    finally:
        listcache.MAX_BYTES = original
