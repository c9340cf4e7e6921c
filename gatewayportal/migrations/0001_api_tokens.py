import hashlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def hash_drf_tokens(apps, schema_editor):
    """Every plain-text DRF token becomes a hashed API token named "migrated" (same key, no expiry), then is deleted."""
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("gatewayportal", "ApiToken")
    for token in Token.objects.all().iterator():
        migrated = ApiToken.objects.create(
            user_id=token.user_id,
            name="migrated",
            prefix=token.key[:8],
            key_hash=hashlib.sha256(token.key.encode()).hexdigest(),
        )
        ApiToken.objects.filter(pk=migrated.pk).update(created_at=token.created)
    Token.objects.all().delete()


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.CharField(help_text="What the token is for, e.g. the CI pipeline using it.", max_length=100),
                ),
                ("prefix", models.CharField(max_length=12)),
                ("key_hash", models.CharField(editable=False, max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField(blank=True, help_text="Empty: never expires.", null=True)),
                ("last_used_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("revoked", models.BooleanField(default=False)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "API token", "ordering": ["user_id", "-created_at"]},
        ),
        migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop),
    ]
