from django.apps import AppConfig


class ServicesConfig(AppConfig):
    name = "services"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gatewayportal.metrics import register_state_collector
        from services.metrics import PortalStateCollector

        register_state_collector(PortalStateCollector)
