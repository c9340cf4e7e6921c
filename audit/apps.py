from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.metrics import AuditChainCollector
        from gatewayportal.metrics import register_scrape_collector

        register_scrape_collector(AuditChainCollector())
