"""API tokens are stored hashed, expire, can be revoked, are named, and the admin never shows one."""

from __future__ import annotations

import importlib
import io
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from gatewayportal.models import ApiToken
from tests.factories import make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/gateway-services/"


def create_token(username: str, *args: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", username, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1].split()[-1]


def status_with(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(URL).status_code


def database_dump() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM gatewayportal_apitoken")
        rows = cursor.fetchall()
        cursor.execute("SELECT * FROM authtoken_token")
        rows += cursor.fetchall()
    return repr(rows)


def test_tokens_are_stored_hashed_named_and_several_per_user():
    make_user("alice")
    ci = create_token("alice", "--name", "ci-deploy", "--expires-in", "30")
    laptop = create_token("alice", "--name", "laptop")
    assert ci != laptop
    assert status_with(ci) == 200 and status_with(laptop) == 200
    dump = database_dump()
    assert ci not in dump and laptop not in dump
    tokens = {t.name: t for t in ApiToken.objects.filter(user__username="alice")}
    assert set(tokens) == {"ci-deploy", "laptop"}
    assert ci.startswith(tokens["ci-deploy"].prefix)
    assert timedelta(days=29) < tokens["ci-deploy"].expires_at - timezone.now() <= timedelta(days=30)
    assert tokens["ci-deploy"].last_used_at is not None


def test_expired_and_revoked_tokens_are_refused():
    make_user("alice")
    expired, revoked = create_token("alice", "--name", "old"), create_token("alice", "--name", "gone")
    ApiToken.objects.filter(name="old").update(expires_at=timezone.now() - timedelta(seconds=1))
    ApiToken.objects.filter(name="gone").update(revoked=True)
    assert status_with(expired) == 401
    assert status_with(revoked) == 401
    assert status_with("not-a-token") == 401


def test_the_admin_never_shows_a_token():
    root = make_user("root", platform=True)
    root.is_superuser = True
    root.save()
    key = create_token("root", "--name", "root-ci")
    browser = Client()
    browser.force_login(root)
    token = ApiToken.objects.get(name="root-ci")
    for page in ("/admin/gatewayportal/apitoken/", f"/admin/gatewayportal/apitoken/{token.pk}/change/"):
        response = browser.get(page)
        assert response.status_code == 200
        assert key not in response.content.decode()
        assert token.prefix in response.content.decode()
    assert token.key_hash not in browser.get(f"/admin/gatewayportal/apitoken/{token.pk}/change/").content.decode()
    # DRF's own token page, which lists keys in clear, is gone.
    assert browser.get("/admin/authtoken/tokenproxy/").status_code == 404


def test_the_migration_hashes_existing_tokens_and_they_keep_working():
    user = make_user("legacy")
    old_key = Token.objects.create(user=user).key
    migration = importlib.import_module("gatewayportal.migrations.0001_api_tokens")
    migration.hash_drf_tokens(apps, None)
    assert not Token.objects.exists()
    assert old_key not in database_dump()
    assert ApiToken.objects.get(user=user).name == "migrated"
    assert status_with(old_key) == 200
