import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection

from clusters.models import Cluster
from services.models import GatewayService, GatewayServiceRevision, Team

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def stored(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.fixture
def written_with_old_key(db, settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD_KEY]
    cluster = Cluster.objects.create(name="prod-eu-1", token="sa-token", kubeconfig="")
    team = Team.objects.create(slug="payments", name="Payments")
    service = GatewayService.objects.create(name="checkout", team=team, namespace="payments", traffic_type="ingress")
    revision = GatewayServiceRevision.objects.create(
        service=service, number=1, spec={}, tls_material={"cert": "C", "key": "K"}
    )
    # The new key becomes primary; the old one stays to decrypt until rotation has run.
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    return cluster, revision


def test_rotation_re_encrypts_every_encrypted_field_with_the_primary_key(written_with_old_key, settings):
    cluster, revision = written_with_old_key
    before = stored("clusters_cluster", "token", cluster.pk)

    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)

    token = stored("clusters_cluster", "token", cluster.pk)
    material = stored("services_gatewayservicerevision", "tls_material", revision.pk)
    assert token != before
    assert Fernet(NEW_KEY.encode()).decrypt(token.encode()) == b"sa-token"
    assert Fernet(NEW_KEY.encode()).decrypt(material.encode()) == b'{"cert": "C", "key": "K"}'
    with pytest.raises(InvalidToken):
        Fernet(OLD_KEY.encode()).decrypt(token.encode())
    assert stored("clusters_cluster", "kubeconfig", cluster.pk) == ""
    assert "clusters.Cluster.token: 1 value(s) re-encrypted" in out.getvalue()
    assert "services.GatewayServiceRevision.tls_material: 1 value(s) re-encrypted" in out.getvalue()


def test_values_read_the_same_after_rotation_and_without_the_old_key(written_with_old_key, settings):
    cluster, revision = written_with_old_key

    call_command("rotate_encryption_keys", stdout=io.StringIO())
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]

    assert Cluster.objects.get(pk=cluster.pk).token == "sa-token"
    assert GatewayServiceRevision.objects.get(pk=revision.pk).tls_material == {"cert": "C", "key": "K"}


def test_rotation_is_audited_once_without_secrets(written_with_old_key):
    from audit.models import AuditEvent

    call_command("rotate_encryption_keys", stdout=io.StringIO())

    event = AuditEvent.objects.get(action="encryption_keys.rotated")
    assert (event.actor, event.source) == ("system", "cli")
    assert event.data["clusters.Cluster.token"] == 1
    assert "sa-token" not in str(event.data)
