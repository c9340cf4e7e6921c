"""The admin login locks out after repeated failures; passwords follow Django's standard validators."""

from __future__ import annotations

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client, override_settings

from tests.factories import api_client, make_user

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"


def login(client: Client, password: str):
    return client.post(LOGIN, {"username": "root", "password": password, "next": "/admin/"})


@pytest.fixture
def root():
    user = make_user("root", platform=True)
    user.is_superuser = True
    user.save()
    return user


@override_settings(AXES_FAILURE_LIMIT=3)
def test_repeated_failures_lock_the_admin_login(root):
    attacker = Client(REMOTE_ADDR="203.0.113.5")
    for _ in range(3):
        assert "_auth_user_id" not in attacker.session
        login(attacker, "wrong-guess")
    # Even the right password is refused now, from that client, for the cool-off time.
    response = login(attacker, "pw-root")
    assert response.status_code in (403, 429)
    assert "_auth_user_id" not in attacker.session
    # The API's token authentication is not the login form: unaffected.
    assert api_client(root).get("/api/v1/gateway-services/").status_code == 200


def test_a_successful_login_still_works(root):
    response = login(Client(), "pw-root")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.parametrize("password", ["password", "12345678901", "qwertyuiop"])
def test_weak_passwords_are_refused(root, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=root)
