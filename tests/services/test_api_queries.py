"""Queries per API request are bounded and do not grow with the page size or the number of services."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/gateway-services/"
# token (with the platform role), count (the teams' kept counts; a filtered list counts its services on the team
# index), page (service + team + current revision), statuses, clusters
LIST_QUERIES = 5
# With the response cache (services.api.listcache; Postgres, outside a transaction): a page kept is the token, then
# the viewer's teams with their versions (one query); a page not kept yet is those two and the list's own four.
LIST_CACHED_QUERIES = 2
LIST_MISS_QUERIES = 6
# Before the port lock: token (with the platform role), team, clusters, then what only the new service holds:
# revision, host index rows, audit event, statuses. Under the port lock (SAVEPOINT ... RELEASE here): lock, the
# services the conflict and name checks read (one union of index look-ups), team row lock, live services (kept by
# the database), the Gateways' tallies (locked; one row per target Gateway: quotas and byte budget without reading
# other services), the service row, tallies update (one for all Gateways). The answer is built from what the create
# read and wrote. Nothing grows with the services on the port or the Gateway.
CREATE_QUERIES = 16


@pytest.fixture
def client():
    alice = make_user("alice")
    make_team("payments", members=[alice])
    make_cluster("prod-eu-1")
    make_cluster("prod-us-1")
    return api_client(alice)


def create(client, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        name = f"svc{i}"
        body = http_service(name=name, hosts=[f"{name}.payments.example.com"], clusters=["prod-eu-1", "prod-us-1"])
        assert client.post(URL, body, format="json").status_code == 201


def queries(send) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        response = send()
    assert response.status_code < 400, response.content
    return len(captured.captured_queries), response


def test_list_queries_are_constant_in_page_size_and_table_size(client):
    create(client, 3)
    small, _ = queries(lambda: client.get(URL, {"page_size": 2}))
    create(client, 12, start=3)
    full, response = queries(lambda: client.get(URL, {"page_size": 50}))
    assert len(response.json()["results"]) == 15
    assert small == full == LIST_QUERIES


@pytest.mark.django_db(transaction=True)
def test_a_cached_list_is_two_queries_and_a_miss_one_more_than_uncached(client):
    from django.core.cache import caches

    from services.api import listcache

    caches[listcache.ALIAS].clear()
    create(client, 3)
    miss, first = queries(lambda: client.get(URL, {"page_size": 2}))
    hit, again = queries(lambda: client.get(URL, {"page_size": 2}))
    create(client, 12, start=3)
    miss_later, _ = queries(lambda: client.get(URL, {"page_size": 50}))
    assert again.content == first.content
    assert (miss, hit, miss_later) == (LIST_MISS_QUERIES, LIST_CACHED_QUERIES, LIST_MISS_QUERIES)
    caches[listcache.ALIAS].clear()


def test_a_filtered_list_is_bounded_too(client):
    create(client, 4)
    count, response = queries(lambda: client.get(URL, {"cluster": "prod-us-1", "page_size": 3}))
    assert response.json()["count"] == 4 and len(response.json()["results"]) == 3
    assert count == LIST_QUERIES


def test_list_and_detail_give_the_same_view(client):
    create(client, 3)
    listed = client.get(URL).json()["results"]
    assert [s["name"] for s in listed] == ["svc0", "svc1", "svc2"]
    for view in listed:
        detail = client.get(f"{URL}{view['id']}/").json()
        assert view == detail
        assert [s["cluster"] for s in view["status"]] == ["prod-eu-1", "prod-us-1"]


def test_a_create_answers_what_a_read_gives(client):
    body = http_service(name="svc0", hosts=["svc0.payments.example.com"], clusters=["prod-us-1", "prod-eu-1"])
    created = client.post(URL, body, format="json")
    assert created.status_code == 201
    answer = created.json()
    assert answer.pop("warnings") == []
    assert client.get(f"{URL}{answer['id']}/").json() == answer
    assert [s["cluster"] for s in answer["status"]] == ["prod-eu-1", "prod-us-1"]


def test_create_queries_are_bounded_and_do_not_grow_with_the_services_on_the_port(client):
    create(client, 2)
    first, _ = queries(
        lambda: client.post(URL, http_service(name="a1", hosts=["a1.payments.example.com"]), format="json")
    )
    create(client, 15, start=2)
    later, _ = queries(
        lambda: client.post(URL, http_service(name="a2", hosts=["a2.payments.example.com"]), format="json")
    )
    assert first == later == CREATE_QUERIES
