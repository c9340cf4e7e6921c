"""Schemathesis over every operation of the OpenAPI document: no 5xx, no undocumented status, no schema drift.

A bounded run for `make test`; `python -m tests.hostile.fuzz` is the large one (docs/reliability.md).
"""

from __future__ import annotations

import pytest
import yaml
from rest_framework.test import APIClient

from tests.hostile.fuzz import connection_kept, fuzz, load_schema
from tests.hostile.world import build_world

EXAMPLES_PER_VARIANT = 4  # per variant and token: the large run is `make fuzz`


@pytest.fixture
def world(db, settings):
    settings.TICKETING_RATE_LIMIT = "100000/min"
    return build_world()


def test_every_operation_conforms_to_the_schema(world):
    with connection_kept():
        schema = load_schema()
        report = fuzz(schema, world, examples=EXAMPLES_PER_VARIANT, tokens=[world.member_token, world.platform_token])

    assert report.failures == {}, report.summary()
    operations = {f"{r.ok().method.upper()} {r.ok().path}" for r in schema.get_all_operations()}
    assert set(report.per_operation) == operations


# --- What the fuzz found, pinned --------------------------------------------------------------------------------


def _as(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_renaming_a_team_to_a_taken_slug_is_a_400(world):
    answer = _as(world.platform_token).patch("/api/v1/teams/ledger/", {"slug": "payments"}, format="json")

    assert answer.status_code == 400
    assert answer.json() == {"slug": ["A team with this slug already exists."]}


def test_deleting_a_team_bound_to_a_ticketing_source_is_a_400(world):
    answer = _as(world.platform_token).delete("/api/v1/teams/ledger/")

    assert answer.status_code == 400
    assert "non_field_errors" in answer.json()


@pytest.mark.parametrize("query", ["until=0173-11-03T09:17:27-21:11", "since=0001-01-01T00:00:00%2B05:00"])
@pytest.mark.parametrize("export", ["", "&format=csv"])
def test_audit_time_filters_postgres_cannot_store_are_never_a_500(world, query, export):
    answer = _as(world.member_token).get(f"/api/v1/audit-events/?{query}{export}")

    assert answer.status_code in (200, 400)
    if answer.streaming:
        assert b"".join(answer.streaming_content).startswith(b"id,at,")


def test_format_suffix_routes_do_not_exist(world):
    answer = _as(world.member_token).get(f"/api/v1/gateway-services/{world.own_service}/history.json")

    assert answer.status_code == 404


def test_the_schema_documents_202_for_delete_and_errors_for_every_operation(world):
    schema = yaml.safe_load(_as(world.member_token).get("/api/schema/").content)

    delete = schema["paths"]["/api/v1/gateway-services/{id}/"]["delete"]["responses"]
    assert set(delete) == {"202", "400", "401", "403", "404", "412"}  # 412: a stale If-Match
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert {"401", "403"} <= set(operation["responses"]) or "security" in operation
