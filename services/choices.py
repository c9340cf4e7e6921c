from django.db import models


class Protocol(models.TextChoices):
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    GRPC = "GRPC"
    HTTP2 = "HTTP2"
    MONGO = "MONGO"
    TCP = "TCP"
    TLS = "TLS"


class TLSMode(models.TextChoices):
    SIMPLE = "SIMPLE"
    PASSTHROUGH = "PASSTHROUGH"
    MUTUAL = "MUTUAL"


class TrafficType(models.TextChoices):
    INGRESS = "ingress"
    EGRESS = "egress"


class TLSProtocolVersion(models.TextChoices):
    TLS_AUTO = "TLS_AUTO"
    TLSV1_0 = "TLSV1_0"
    TLSV1_1 = "TLSV1_1"
    TLSV1_2 = "TLSV1_2"
    TLSV1_3 = "TLSV1_3"


class Approval(models.TextChoices):
    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class State(models.TextChoices):
    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"
    REJECTED = "rejected"
    AWAITING_APPROVAL = "awaiting_approval"
    REMOVING = "removing"
