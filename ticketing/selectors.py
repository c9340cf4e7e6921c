"""Reads of ticketing sources and deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from ticketing.models import TicketingSource, WebhookDelivery


def ticketing_source_list() -> QuerySet[TicketingSource]:
    """Every source; only platform engineers reach this (the API and admin check the role)."""
    return TicketingSource.objects.select_related("team")


def ticketing_source_by_name(*, name: str) -> TicketingSource | None:
    return ticketing_source_list().filter(name=name).first()


def webhook_delivery_list() -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.select_related("source")
