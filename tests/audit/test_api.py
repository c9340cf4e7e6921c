import csv
import io
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models.sql import compiler
from django.http import StreamingHttpResponse

from audit import export
from audit.actions import audit_record
from tests.factories import api_client, make_team, make_user

URL = "/api/v1/audit-events/"
PEM_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"


@pytest.fixture
def alice():
    user = make_user("alice")
    make_team("payments", members=[user])
    make_team("search")
    return user


@pytest.fixture
def platform():
    return make_user("root", platform=True)


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.django_db
def test_teams_see_only_their_events_and_platform_sees_all(alice, platform):
    mine = audit_record(action="gateway_service.created", object_type="gateway_service", team="payments")
    theirs = audit_record(action="gateway_service.created", object_type="gateway_service", team="search")
    global_event = audit_record(action="cluster.updated", object_type="cluster", cluster="prod-eu-1")

    assert ids(api_client(alice).get(URL)) == {mine.id}
    assert api_client(alice).get(f"{URL}{theirs.id}/").status_code == 404
    assert ids(api_client(platform).get(URL)) == {mine.id, theirs.id, global_event.id}


@pytest.mark.django_db
def test_event_shape_matches_the_contract(platform):
    event = audit_record(
        action="gateway_service.updated",
        object_type="gateway_service",
        object_id="3f0c",
        object_repr="payments/checkout",
        team="payments",
        ticket="OPS-123",
        changes={"port": [80, 443]},
    )

    body = api_client(platform).get(f"{URL}{event.id}/").json()

    assert set(body) == {
        "id", "at", "actor", "source", "action", "object_type", "object_id", "object_repr",
        "team", "cluster", "ticket", "request_id", "changes", "data", "hash", "prev_hash",
    }  # fmt: skip
    assert body["changes"] == {"port": [80, 443]}
    assert body["hash"] == event.hash


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("team=payments", {"a", "b"}),
        ("cluster=prod-eu-1", {"c"}),
        ("action=gateway_service.created", {"a"}),
        ("actor=bob", {"b"}),
        ("source=worker", {"c"}),
        ("object_id=obj-b", {"b"}),
        ("ticket=OPS-7", {"a"}),
        ("since=2025-02-01T00:00:00Z", {"b", "c"}),
        ("until=2025-02-01T00:00:00Z", {"a"}),
        ("since=2025-02-01&until=2025-03-01", {"b"}),
        ("team=payments&actor=alice", {"a"}),
    ],
)
def test_filters(platform, bulk_events, query, expected):
    jan, feb, mar = (datetime(2025, m, 10, tzinfo=UTC) for m in (1, 2, 3))
    created = {
        "a": bulk_events(1, start=jan, action="gateway_service.created", object_id="obj-a", ticket="OPS-7")[0],
        "b": bulk_events(1, start=feb, actor="bob", object_id="obj-b")[0],
        "c": bulk_events(1, start=mar, source="worker", team=None, cluster="prod-eu-1", object_id="obj-c")[0],
    }

    found = ids(api_client(platform).get(f"{URL}?{query}"))

    assert found == {created[name].id for name in expected}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("since=yesterday", "since", "ISO 8601"),
        ("until=2025-13-45", "until", "ISO 8601"),
        ("source=email", "source", "accepted: api, admin, webhook, worker, scheduler, cli"),
        ("format=xml", "format", "accepted: json, csv"),
    ],
)
def test_bad_filters_are_refused_naming_field_and_accepted_values(platform, query, field, message):
    response = api_client(platform).get(f"{URL}?{query}")

    assert response.status_code == 400
    assert message in response.json()[field][0]


@pytest.mark.django_db
def test_audit_events_are_read_only(platform):
    event = audit_record(action="team.updated", object_type="team")
    client = api_client(platform)

    assert client.post(URL, {}).status_code == 405
    assert client.delete(f"{URL}{event.id}/").status_code == 405
    assert client.patch(f"{URL}{event.id}/", {"actor": "x"}).status_code == 405


@pytest.mark.django_db
def test_csv_export_is_filtered_scoped_and_redacted(alice):
    audit_record(action="gateway_service.created", object_type="gateway_service", team="payments", ticket="OPS-1")
    audit_record(
        action="gateway_service.updated", object_type="gateway_service", team="payments", data={"key": PEM_KEY}
    )
    audit_record(action="gateway_service.created", object_type="gateway_service", team="search", ticket="OPS-1")

    response = api_client(alice).get(f"{URL}?format=csv&team=payments")
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))

    assert response["Content-Type"].startswith("text/csv")
    assert [r["action"] for r in rows] == ["gateway_service.updated", "gateway_service.created"]
    assert json.loads(rows[0]["data"]) == {"key": "[redacted]"}
    assert "PRIVATE KEY" not in text
    filtered = b"".join(api_client(alice).get(f"{URL}?format=csv&ticket=OPS-1").streaming_content).decode()
    assert len(list(csv.DictReader(io.StringIO(filtered)))) == 1


@pytest.mark.django_db
def test_csv_export_of_100k_rows_streams_in_chunks(platform, bulk_events, monkeypatch):
    total = 100_000
    bulk_events(total, step=timedelta(milliseconds=10))
    blocks: list[int] = []
    real_cursor_iter = compiler.cursor_iter

    def counting_cursor_iter(*args, **kwargs):
        for rows in real_cursor_iter(*args, **kwargs):
            blocks.append(len(rows))
            yield rows

    monkeypatch.setattr(compiler, "cursor_iter", counting_cursor_iter)

    response = api_client(platform).get(f"{URL}?format=csv")
    assert isinstance(response, StreamingHttpResponse)
    blocks.clear()  # the request's own look-ups (token, user) are not the export
    lines = iter(response.streaming_content)
    head = list(itertools.islice(lines, 11))

    assert head[0].decode().startswith("id,at,actor,source,action")
    assert sum(blocks) <= export.CHUNK_SIZE, "the first lines were sent before the rest was read"
    remaining = sum(1 for _ in lines)
    assert len(head) - 1 + remaining == total
    assert max(blocks) <= export.CHUNK_SIZE
    assert sum(blocks) == total
    response.close()
