from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.metrics import AuditChainCollector
        from gatewayportal.crypto import keys_rotated
        from gatewayportal.metrics import register_state_collector

        keys_rotated.connect(record_key_rotation, dispatch_uid="audit.record_key_rotation")
        register_state_collector(AuditChainCollector)


def record_key_rotation(sender, *, counts: dict[str, int], **kwargs) -> None:
    """The audit event of a key rotation, written in the rotation's transaction: which fields, how many values."""
    from audit.actions import audit_record

    audit_record(
        action="encryption_keys.rotated", object_type="encryption_keys", object_repr="at-rest keys", data=counts
    )
