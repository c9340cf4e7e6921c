"""Production hardening comes from the environment, and error pages never echo what the caller sent."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from django.test import Client

from tests.deploy.manifests import CHECK_DEPLOY, PRODUCTION_ENV, manage
from tests.factories import api_token, make_user

REPO = Path(__file__).resolve().parents[2]


def test_documented_production_variables_pass_check_deploy(tmp_path):
    operations = (REPO / "docs" / "operations.md").read_text()
    for name in PRODUCTION_ENV:
        assert f"`{name}`" in operations, name

    result = manage(CHECK_DEPLOY, PRODUCTION_ENV, tmp=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr


@pytest.mark.django_db
def test_a_500_never_echoes_the_request(settings, monkeypatch):
    """With DEBUG=false (production and the demo) the error page shows no body, URL or credential of the request."""
    from services.api import views

    settings.DEBUG = False
    canary = secrets.token_hex(8)  # generated: the page's source excerpts must not contain it by chance
    secret = "-----BEGIN PRIVATE KEY-----" + canary

    def boom(self, request, *args, **kwargs):
        payload = request.data  # noqa: F841 (a local variable the technical 500 page would list)
        raise RuntimeError("boom")

    monkeypatch.setattr(views.GatewayServiceViewSet, "create", boom)
    user = make_user("root", platform=True)
    token = api_token(user)
    client = Client(raise_request_exception=False)
    for accept in ("text/html", "application/json"):
        response = client.post(
            f"/api/v1/gateway-services/?q=get{canary}",
            {"name": "x", "tls_secret": {"key": secret}},
            content_type="application/json",
            HTTP_ACCEPT=accept,
            HTTP_AUTHORIZATION=f"Token {token}",
        )
        assert response.status_code == 500
        body = response.content.decode()
        for echoed in (canary, token):
            assert echoed not in body, (accept, re.findall(rf".{{0,80}}{re.escape(echoed)}.{{0,40}}", body)[:3])


def test_the_demo_does_not_run_with_debug():
    """`make run` writes the demo's .env: DEBUG=true there would show request data on error pages."""
    makefile = (REPO / "Makefile").read_text()
    env_recipe = makefile.split("\n.env:", 1)[1].split("\n\n", 1)[0]
    assert "DEBUG=false" in env_recipe
    assert "DEBUG=true" not in env_recipe
