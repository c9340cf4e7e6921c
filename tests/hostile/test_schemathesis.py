"""Schemathesis over every operation of the OpenAPI document: no 5xx, no undocumented status, no schema drift.

A bounded run for `make test`; `python -m tests.hostile.fuzz` is the large one (docs/reliability.md).
"""

from __future__ import annotations

import pytest

from tests.hostile.fuzz import connection_kept, fuzz, load_schema
from tests.hostile.world import build_world

EXAMPLES_PER_VARIANT = 10


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
