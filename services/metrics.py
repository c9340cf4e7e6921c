"""The services' gauges on /metrics: approvals waiting and certificates expiring, read from the database.

Registered with `gatewayportal.metrics.register_state_collector` by ServicesConfig.ready().
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.choices import Approval
from services.models import GatewayService

logger = logging.getLogger(__name__)


def _parse_not_after(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def count_certificates(not_afters: Iterable[object], *, now: datetime, window: timedelta) -> tuple[int, int]:
    """(expiring within the window but still valid, already expired) among `not_after` values."""
    expiring = expired = 0
    for value in not_afters:
        not_after = _parse_not_after(value)
        if not_after is None:
            continue
        if not_after <= now:
            expired += 1
        elif not_after <= now + window:
            expiring += 1
    return expiring, expired


class PortalStateCollector(Collector):
    """Gauges computed from the database of record on each scrape."""

    def collect(self) -> Iterator[Metric]:
        live = GatewayService.objects.filter(deleting_at__isnull=True, current_revision__isnull=False)
        window_days = settings.CERT_EXPIRY_WARNING_DAYS
        try:
            pending = live.filter(current_revision__approval=Approval.PENDING).count()
            not_afters = list(
                live.filter(current_revision__certificate__isnull=False).values_list(
                    "current_revision__certificate__not_after", flat=True
                )
            )
        except DatabaseError:
            # A scrape must still answer when the database is down; /readyz reports that outage.
            logger.warning("metrics: database unavailable, skipping database gauges", exc_info=True)
            return
        expiring, expired = count_certificates(not_afters, now=timezone.now(), window=timedelta(days=window_days))
        yield GaugeMetricFamily(
            "gatewayportal_pending_approvals",
            "Gateway services whose current revision awaits approval.",
            value=pending,
        )
        yield GaugeMetricFamily(
            "gatewayportal_certificates_expiring",
            f"Current certificates that expire within CERT_EXPIRY_WARNING_DAYS ({window_days}) days.",
            value=expiring,
        )
        yield GaugeMetricFamily(
            "gatewayportal_certificates_expired",
            "Current certificates whose not_after has passed.",
            value=expired,
        )
