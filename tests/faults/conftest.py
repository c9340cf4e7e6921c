"""Fixtures of the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.helpers import RedisServer


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A private Redis for tests that take it down (never the shared one other test runs use)."""
    server = RedisServer(tmp_path / "redis.log").start()
    yield server
    server.stop()
