"""Prometheus gauges of the audit chain, read from the database at scrape time.

- `gatewayportal_audit_unsealed_events`: events committed but not yet sealed;
- `gatewayportal_audit_unsealed_oldest_seconds`: age of the oldest of them (the sealing window);
- `gatewayportal_audit_chain_head_seq` and `gatewayportal_audit_chain_head_info{hash=…}`: the head.
Prometheus keeping the head's history is one of the places outside the database that remember it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class AuditChainCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        from audit import chain

        try:
            window = chain.unsealed().aggregate(count=Count("id"), oldest=Min("at"))
            head = chain.head()
        except DatabaseError:
            logger.warning("metrics: database unavailable, skipping audit chain gauges", exc_info=True)
            return
        oldest = (timezone.now() - window["oldest"]).total_seconds() if window["oldest"] else 0.0
        yield GaugeMetricFamily(
            "gatewayportal_audit_unsealed_events",
            "Audit events committed but not yet sealed into the hash chain.",
            value=window["count"],
        )
        yield GaugeMetricFamily(
            "gatewayportal_audit_unsealed_oldest_seconds",
            "Age of the oldest audit event not yet sealed (0 when none).",
            value=max(oldest, 0.0),
        )
        yield GaugeMetricFamily(
            "gatewayportal_audit_chain_head_seq",
            "Sequence number of the newest sealed audit event (0 before the first).",
            value=head.seq if head else 0,
        )
        yield InfoMetricFamily(
            "gatewayportal_audit_chain_head",
            "Hash of the newest sealed audit event.",
            value={"hash": head.hash if head else "", "seq": str(head.seq if head else 0)},
        )
