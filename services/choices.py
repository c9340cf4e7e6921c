"""The portal's vocabulary: model field choices, and the plain tuples the pure rules use."""

from django.db import models

from services.listeners import HTTP_FAMILY, TLS_BEARING


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


# The portal's vocabulary as plain tuples, derived from the choices above: validation, the planner and the
# cluster actions use these, never their own copies (tests/services/test_choices.py pins them).
PORTAL_PROTOCOLS: tuple[str, ...] = tuple(Protocol.values)
PORTAL_PLAINTEXT = frozenset(p for p in PORTAL_PROTOCOLS if p not in TLS_BEARING)
PORTAL_HTTP_FAMILY = frozenset(p for p in PORTAL_PROTOCOLS if p in HTTP_FAMILY)
PORTAL_TLS_MODES: tuple[str, ...] = tuple(TLSMode.values)
TRAFFIC_TYPES: tuple[str, ...] = tuple(TrafficType.values)
TLS_VERSIONS: tuple[str, ...] = tuple(TLSProtocolVersion.values)  # oldest first: `tls_version_greater` relies on it
