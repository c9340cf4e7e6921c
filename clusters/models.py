from django.db import models

from gatewayportal.crypto import EncryptedTextField


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
