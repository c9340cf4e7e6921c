"""No page loads a script, stylesheet or image from another host: the API docs' assets are served by the portal."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import make_user

pytestmark = pytest.mark.django_db

# src=/href= of script, link and img tags, and the asset URLs Swagger UI's inline script builds pages from.
ASSET = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']"""
    r"""|["']((?:https?:)?//[^"']+\.(?:js|css|png|svg|ico))["']""",
    re.I,
)

PAGES = ["/api/docs/", "/admin/login/", "/admin/", "/api/v1/gateway-services/", "/api/v1/audit-events/"]


def external_assets(html: str) -> list[str]:
    urls = [a or b for a, b in ASSET.findall(html)]
    return [u for u in urls if re.match(r"^(?:https?:)?//", u) and not re.match(r"^(?:https?:)?//testserver/", u)]


@pytest.mark.parametrize("page", PAGES)
def test_page_pulls_nothing_from_another_host(page):
    user = make_user("root", platform=True)
    user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    response = client.get(page, HTTP_ACCEPT="text/html", follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script" in html or "<link" in html
    assert external_assets(html) == []


def test_the_docs_assets_are_served_by_the_portal():
    html = Client().get("/api/docs/").content.decode()
    scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)
    assert any("swagger-ui" in src for src in scripts)
    for src in scripts:
        response = Client().get(src)
        assert response.status_code == 200, src
