"""Re-encrypt every value stored encrypted at rest with the primary (first) FIELD_ENCRYPTION_KEYS key.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it), restart,
run this command, then drop the old keys.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import models, transaction
from django.db.models.functions import Cast

from gatewayportal.context import acting_as
from gatewayportal.crypto import EncryptedTextField, keys_rotated, rotate

RAW = "_stored_token"


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every EncryptedTextField of every installed model: an app's new secret column is rotated without a list."""
    return [
        (model, field.attname)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField)
    ]


def rotate_field(model: type[models.Model], attname: str) -> int:
    """Rotate one column's tokens in place; the plaintext never leaves the database layer."""
    # Cast to a plain TextField so the stored token is read as-is, not decrypted by the field.
    stored = (
        model._default_manager.annotate(**{RAW: Cast(attname, models.TextField())})
        .exclude(**{f"{RAW}__isnull": True})
        .exclude(**{RAW: ""})
        .values_list("pk", RAW)
    )
    count = 0
    for pk, token in stored.iterator():
        # A Value expression is written as-is: assigning the string would encrypt the token a second time.
        # update() also bypasses save(), which immutable models refuse: the plaintext does not change.
        model._default_manager.filter(pk=pk).update(**{attname: models.Value(rotate(token), models.TextField())})
        count += 1
    return count


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the primary key of FIELD_ENCRYPTION_KEYS, in one transaction."

    def handle(self, *args, **options) -> None:
        with acting_as(name="system", source="cli"), transaction.atomic():
            counts = {
                f"{model._meta.label}.{attname}": rotate_field(model, attname) for model, attname in encrypted_fields()
            }
            keys_rotated.send(sender=self.__class__, counts=counts)
        for name, count in counts.items():
            self.stdout.write(f"{name}: {count} value(s) re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"Rotated {sum(counts.values())} value(s) in {len(counts)} field(s)."))
