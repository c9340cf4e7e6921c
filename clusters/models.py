from django.db import models

from gatewayportal.crypto import EncryptedTextField
from gatewayportal.redis import key_prefix


def gateway_lock_key(cluster_id: int, traffic_type: str) -> str:
    """The lock a worker holds while it converges a gateway (adoption holds it while it records ownership)."""
    return f"{key_prefix()}:lock:{cluster_id}:{traffic_type}"


def default_placeholder_server() -> dict:
    from services.rendering import DEFAULT_PLACEHOLDER_SERVER

    return dict(DEFAULT_PLACEHOLDER_SERVER)


class Cluster(models.Model):
    name = models.SlugField(max_length=63, unique=True)
    labels = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    requires_approval = models.BooleanField(default=False)
    ingress_gateway = models.CharField(max_length=253, default="istio-system/ingress-gateway")
    egress_gateway = models.CharField(max_length=253, default="istio-system/egress-gateway")
    ingress_secret_namespace = models.CharField(max_length=63, null=True, blank=True)
    egress_secret_namespace = models.CharField(max_length=63, null=True, blank=True)
    namespace_scoped_hosts = models.BooleanField(default=True)
    placeholder_server = models.JSONField(
        default=default_placeholder_server,
        blank=True,
        help_text="The server the portal writes while no other server would remain in a Gateway (Istio refuses a "
        "Gateway without servers); removed as soon as another server is there.",
    )

    # Credentials: api_server + ca_cert + token, or a kubeconfig. Secrets encrypted at rest.
    api_server = models.CharField(max_length=500, blank=True)
    ca_cert = models.TextField(blank=True)
    token = EncryptedTextField(blank=True)
    kubeconfig = EncryptedTextField(blank=True)
    credentials_updated_at = models.DateTimeField(null=True, blank=True)

    # Last connection check.
    reachable = models.BooleanField(null=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    health_message = models.TextField(blank=True)
    istio_api_version = models.CharField(max_length=100, blank=True)

    # Timestamps, ordering and name as each named model declares them (services.Team, ticketing.TicketingSource):
    # Django declarations alike in shape, with no logic to share.
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def gateway_ref(self, traffic_type: str) -> tuple[str, str]:
        """(namespace, name) of the Gateway for this traffic type."""
        ref = self.ingress_gateway if traffic_type == "ingress" else self.egress_gateway
        namespace, _, name = ref.partition("/")
        return namespace, name

    def secret_namespace(self, traffic_type: str) -> str:
        configured = self.ingress_secret_namespace if traffic_type == "ingress" else self.egress_secret_namespace
        return configured or self.gateway_ref(traffic_type)[0]


class GatewayState(models.Model):
    """What the worker last saw and wrote on one (cluster, traffic type) gateway."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="gateway_states")
    traffic_type = models.CharField(max_length=7)
    resource_version = models.CharField(max_length=100, blank=True)
    # Port names the portal wrote, so its servers stay recognisable even if someone drops the annotation.
    managed_servers = models.JSONField(default=list, blank=True)
    # Servers adopted as they were: managed, but not yet listed in the annotation (no write just for that).
    adopted_servers = models.JSONField(default=list, blank=True)
    managed_digest = models.CharField(max_length=64, blank=True, help_text="Hash of the managed servers last written.")
    # Hash of what the database wanted when the gateway last converged: an idle reconcile compares it and stops.
    desired_digest = models.CharField(max_length=64, blank=True)
    # "namespace/name" -> {"digest", "service"} for every secret the portal created here.
    secrets = models.JSONField(default=dict, blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    last_result = models.CharField(max_length=20, blank=True)  # ok | failed | refused
    last_message = models.TextField(blank=True)

    class Meta:
        ordering = ["cluster__name", "traffic_type"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "traffic_type"], name="gateway_state_unique_per_cluster"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster} {self.traffic_type}: {self.last_result or 'never reconciled'}"
