"""Helpers for audit tests: a quick way to lay down a long, valid chain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audit import chain
from audit.models import AuditEvent

BulkEvents = Callable[..., list[AuditEvent]]


@pytest.fixture
def bulk_events() -> BulkEvents:
    """Insert `n` sealed events with a correctly computed chain (continuing the current head), fast."""

    def insert(n: int, *, start: datetime | None = None, step: timedelta = timedelta(seconds=1), **fields: Any):
        at = start or datetime(2025, 1, 6, tzinfo=UTC)
        head = chain.head()
        seq, prev = (head.seq, head.hash) if head else (0, "")
        events = []
        for i in range(n):
            values = {
                "at": at + i * step,
                "actor": "alice",
                "source": "api",
                "action": "gateway_service.updated",
                "object_type": "gateway_service",
                "object_id": f"obj-{i}",
                "object_repr": f"payments/svc-{i}",
                "team": "payments",
                "cluster": None,
                "ticket": None,
                "request_id": "",
                "changes": {"port": [80, 443]},
                "data": {},
                **fields,
                "prev_hash": prev,
            }
            event = AuditEvent(**values, seq=seq + i + 1)
            event.hash = prev = chain.compute_hash(values)
            events.append(event)
        return AuditEvent.objects.bulk_create(events, batch_size=5000)

    return insert
