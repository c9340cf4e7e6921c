from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks in every process: `clusters.enqueue` publishes them by name, without importing
        # the worker's modules (which would close an import cycle through `services.actions`).
        from clusters import tasks  # noqa: F401
