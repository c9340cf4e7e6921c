"""services.specs: a payload's shape is checked without DRF, answering exactly what DRF's serializer fields did.

The reference is a plain DRF serializer built from the fields GatewayServiceSerializer declares for the schema,
so this also keeps the schema and the checks in step.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from gatewayportal.exceptions import DomainError
from gatewayportal.serializers import StrictFieldsMixin
from services import specs
from services.api.serializers import GatewayServiceSerializer


def _reference() -> type[serializers.Serializer]:
    """GatewayServiceSerializer's declared fields, checked by DRF as before services.specs existed."""
    fields = {
        name: copy.deepcopy(f) for name, f in GatewayServiceSerializer._declared_fields.items() if not f.read_only
    }
    read_only = {name: serializers.ReadOnlyField() for name, f in GatewayServiceSerializer._declared_fields.items()}
    return type("Reference", (StrictFieldsMixin, serializers.Serializer), {**read_only, **fields})


def _drf(payload: Any, partial: bool) -> tuple[bool, Any]:
    serializer = _reference()(data=payload, partial=partial)
    if serializer.is_valid():
        data = json.loads(json.dumps(serializer.validated_data))
        if "clusters" in data:  # services.specs drops duplicate cluster names, which a ListField cannot say
            data["clusters"] = list(dict.fromkeys(data["clusters"]))
        return True, data
    return False, json.loads(json.dumps(serializer.errors))


def _ours(payload: Any, partial: bool) -> tuple[bool, Any]:
    try:
        return True, json.loads(json.dumps(specs.parse(payload, partial=partial)))
    except DomainError as exc:
        return False, json.loads(json.dumps(exc.errors))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "  ",
            "web",
            "Web",
            "a" * 64,
            "team-a",
            "bad slug",
            "HTTP",
            "https",
            " tls ",
            "Ingress",
            "EGRESS",
            "SIMPLE",
            "mutual",
            "TLSV1_2",
            "tlsv1_3",
            "443",
            "80.0",
            "8_0",
            "yes",
            "off",
            "null",
            "/etc/cert.pem",
            "relative",
            "a\x00b",
            "x.example.com",
            "c1",
        ]
    ),
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["cert", "key", "a", "secret_name"]), inner)
    ),
    max_leaves=6,
)
tls = st.one_of(
    values,
    st.fixed_dictionaries(
        {},
        optional={
            "tls_secret": st.one_of(
                values, st.fixed_dictionaries({}, optional={"cert": values, "key": values, "ca_cert": values})
            ),
            "tls_secret_ref": st.one_of(values, st.fixed_dictionaries({}, optional={"secret_name": values})),
            "tls_secret_path": st.one_of(
                values,
                st.fixed_dictionaries({}, optional={"cert_path": values, "key_path": values, "ca_cert_path": values}),
            ),
            "other": values,
        },
    ),
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "name": values,
        "team": values,
        "namespace": values,
        "hosts": st.one_of(values, st.lists(values, max_size=3)),
        "port": values,
        "protocol": values,
        "mode": values,
        "traffic_type": values,
        "tls_options": tls,
        "https_redirect": values,
        "min_protocol_version": values,
        "max_protocol_version": values,
        "clusters": st.one_of(values, st.lists(values, max_size=3)),
        "cluster_selector": st.one_of(values, st.dictionaries(st.sampled_from(["env", "zone"]), values)),
        "ticket": values,
        "status": values,
        "surprise": values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(payloads, values), partial=st.booleans())
def test_parse_answers_what_the_serializer_fields_answer(payload: Any, partial: bool) -> None:
    try:
        expected = _drf(payload, partial)
    except TypeError:
        # DRF's choice field raised on an unhashable value (a 500); ours refuses it like any other value.
        ok, _ = _ours(payload, partial)
        assert not ok
        return
    assert _ours(payload, partial) == expected


def test_a_valid_payload_gets_its_defaults() -> None:
    data = specs.parse({"name": "web", "namespace": "a", "hosts": ["x.example.com"], "port": "80", "protocol": "http",
                        "traffic_type": "INGRESS"})  # fmt: skip
    assert data == {
        "name": "web",
        "namespace": "a",
        "hosts": ["x.example.com"],
        "port": 80,
        "protocol": "HTTP",
        "traffic_type": "ingress",
        "https_redirect": False,
        "clusters": [],
        "cluster_selector": None,
        "ticket": "",
    }


def test_nested_errors_keep_the_api_shape() -> None:
    with pytest.raises(DomainError) as refused:
        specs.parse({"hosts": ["ok.example.com", 5, None], "tls_options": {"tls_secret": {"cert": "x"}}})
    errors = refused.value.errors
    assert errors["hosts"] == {2: ["This field may not be null."]}
    assert errors["tls_options"] == {"tls_secret": {"key": ["This field is required."]}}
    assert errors["name"] == ["This field is required."]


def test_partial_leaves_absent_fields_out() -> None:
    assert specs.parse({"port": 8080}, partial=True) == {"port": 8080}


def test_no_payload_is_refused() -> None:
    with pytest.raises(DomainError) as refused:
        specs.parse(None)
    assert refused.value.errors == {"non_field_errors": ["No data provided"]}
