import pytest
from django.db import connection

from clusters.models import Cluster
from gatewayportal import crypto


def test_round_trip_and_rotation(settings):
    token = crypto.encrypt("secret-value")
    assert "secret-value" not in token
    settings.FIELD_ENCRYPTION_KEYS = ["Jm3S6m9h1-3H0A9Yb8oQyJQ3b2d9wC0m0KXW7F5v3_s=", *settings.FIELD_ENCRYPTION_KEYS]
    assert crypto.decrypt(token) == "secret-value"
    rotated = crypto.rotate(token)
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]
    assert crypto.decrypt(rotated) == "secret-value"


@pytest.mark.django_db
def test_encrypted_field_stores_no_plaintext():
    Cluster.objects.create(name="c1", token="bearer-token-value")
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM clusters_cluster WHERE name = 'c1'")
        (raw,) = cursor.fetchone()
    assert "bearer-token-value" not in raw
    assert Cluster.objects.get(name="c1").token == "bearer-token-value"
