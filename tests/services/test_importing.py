"""The operator's GatewayService -> the API's payload: every CRD field kept, metadata.name first."""

from __future__ import annotations

import pytest

from gatewayportal.exceptions import DomainError
from services.importing import parse_documents, to_payload
from services.models import Team

TEAM = Team(slug="payments", namespaces=["payments"])


def resource(**spec):
    return {
        "apiVersion": "gatewayservice.xunholy.github.com/v1alpha1",
        "kind": "GatewayService",
        "metadata": {"name": "checkout", "namespace": "payments"},
        "spec": {"hosts": ["a.example.com"], "port": 443, "protocol": "HTTPS", "trafficType": "ingress", **spec},
    }


def test_every_field_of_the_crd_is_kept():
    payload = to_payload(
        resource(
            mode="MUTUAL",
            httpsRedirect=True,
            minProtocolVersion="TLSV1_2",
            maxProtocolVersion="TLSV1_3",
            caCertificates="/etc/certs/ca.pem",
            tlsOptions={"tlsSecretPath": {"certPath": "/etc/certs/tls.crt", "keyPath": "/etc/certs/tls.key"}},
        ),
        team=TEAM,
        clusters=["prod"],
    )

    assert payload["https_redirect"] is True
    assert payload["min_protocol_version"] == "TLSV1_2"
    assert payload["max_protocol_version"] == "TLSV1_3"
    assert payload["mode"] == "MUTUAL"
    assert payload["tls_options"] == {
        "tls_secret_path": {
            "cert_path": "/etc/certs/tls.crt",
            "key_path": "/etc/certs/tls.key",
            "ca_cert_path": "/etc/certs/ca.pem",
        }
    }


def test_ca_certificates_go_with_a_tls_secret_as_its_ca():
    payload = to_payload(
        resource(mode="MUTUAL", caCertificates="PEM", tlsOptions={"tlsSecret": {"cert": "C", "key": "K"}}),
        team=TEAM,
        clusters=[],
    )

    assert payload["tls_options"] == {"tls_secret": {"cert": "C", "key": "K", "ca_cert": "PEM"}}


def test_ca_certificates_without_somewhere_to_go_are_refused():
    with pytest.raises(DomainError) as caught:
        to_payload(resource(caCertificates="/ca.pem"), team=TEAM, clusters=[])

    assert "caCertificates" in caught.value.errors["spec"]


def test_metadata_name_wins_over_the_dropped_spec_name():
    assert to_payload(resource(name="old-name"), team=TEAM, clusters=[])["name"] == "checkout"


def test_an_unknown_spec_field_is_refused_not_dropped():
    with pytest.raises(DomainError) as caught:
        to_payload(resource(colour="blue"), team=TEAM, clusters=[])

    assert "colour" in caught.value.errors["spec"]


def test_lists_json_arrays_and_multi_document_streams_are_flattened():
    text = "kind: List\nitems: [{a: 1}, {b: 2}]\n---\n---\n[{c: 3}]\n"

    assert parse_documents(text) == [{"a": 1}, {"b": 2}, {"c": 3}]


@pytest.mark.parametrize("options", [["a"], {"tlsSecret": "x"}, {"tlsSecretRef": ["a"]}, {"tlsSecretPath": 1}])
def test_malformed_tls_options_are_a_400_not_a_crash(options):
    with pytest.raises(DomainError):
        to_payload(resource(tlsOptions=options), team=TEAM, clusters=[])
