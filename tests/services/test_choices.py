"""The portal's vocabulary has one definition: services.choices. Everything else uses the same tuples."""

from __future__ import annotations

import clusters.actions
import clusters.tasks
from services import choices, validation
from services.listeners import HTTP_FAMILY, TLS_BEARING


def test_tuples_are_the_choices_values_in_declaration_order():
    assert choices.PORTAL_PROTOCOLS == ("HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS")
    assert choices.PORTAL_PROTOCOLS == tuple(choices.Protocol.values)
    assert choices.PORTAL_TLS_MODES == ("SIMPLE", "PASSTHROUGH", "MUTUAL") == tuple(choices.TLSMode.values)
    assert choices.TRAFFIC_TYPES == ("ingress", "egress") == tuple(choices.TrafficType.values)
    assert choices.TLS_VERSIONS == ("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")
    assert choices.TLS_VERSIONS == tuple(choices.TLSProtocolVersion.values)


def test_protocol_families_partition_the_portal_protocols():
    assert choices.PORTAL_HTTP_FAMILY == {"HTTP", "HTTP2", "GRPC"}
    assert choices.PORTAL_PLAINTEXT == {"HTTP", "GRPC", "HTTP2", "MONGO", "TCP"}
    assert choices.PORTAL_HTTP_FAMILY <= HTTP_FAMILY
    assert choices.PORTAL_PLAINTEXT | (set(choices.PORTAL_PROTOCOLS) & TLS_BEARING) == set(choices.PORTAL_PROTOCOLS)
    assert all(type(value) is str for value in choices.PORTAL_PROTOCOLS + choices.TRAFFIC_TYPES)


def test_every_module_uses_the_one_definition():
    for name in ("PORTAL_PROTOCOLS", "PORTAL_PLAINTEXT", "PORTAL_HTTP_FAMILY", "PORTAL_TLS_MODES", "TLS_VERSIONS"):
        assert getattr(validation, name) is getattr(choices, name), name
    for module in (validation, clusters.actions, clusters.tasks):
        assert module.TRAFFIC_TYPES is choices.TRAFFIC_TYPES, module.__name__
