"""Reads of ticketing sources and deliveries."""

from __future__ import annotations

import re

from django.db.models import QuerySet

from ticketing.models import TicketingSource, WebhookDelivery

SOURCE_NAME = re.compile(r"[-a-zA-Z0-9_]{1,63}")  # TicketingSource.name: a SlugField of 63


def ticketing_source_list() -> QuerySet[TicketingSource]:
    """Every source; only platform engineers reach this (the API and admin check the role)."""
    return TicketingSource.objects.select_related("team")


def ticketing_source_by_name(*, name: str) -> TicketingSource | None:
    """None for a name no source can have (not a slug, or longer than the field): a NUL in the URL reached the query
    and failed it (a 500, unauthenticated)."""
    if not SOURCE_NAME.fullmatch(name):
        return None
    return ticketing_source_list().filter(name=name).first()


def webhook_delivery_list() -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.select_related("source")
