"""`/metrics` names clusters and queries the database on every scrape: with METRICS_TOKEN set it needs that bearer."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = "metrics-scrape-token-5c1e9a"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Token {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
def test_metrics_without_the_token_is_401(settings, header):
    settings.METRICS_TOKEN = TOKEN
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = Client().get("/metrics", **extra)
    assert response.status_code == 401
    assert b"gatewayportal_" not in response.content
    assert response["WWW-Authenticate"] == "Bearer"


def test_metrics_with_the_token_is_served(settings):
    settings.METRICS_TOKEN = TOKEN
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert b"gatewayportal_pending_approvals" in response.content
