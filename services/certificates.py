"""Pure checks of TLS material (certificate chain, private key, CA) with `cryptography`.

No ORM, no network: the API, the admin, the webhook and the reconciler all call these with plain strings.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

PEM_MARKER = "-----BEGIN "
_KEY_FORMATS = "PEM RSA (PKCS#1), EC or Ed25519 key, PKCS#8 or PKCS#1, unencrypted"
SUPPORTED_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)


def load_pem_text(value: str) -> str:
    """PEM text as given, or decoded from base64 of PEM (the seed's format); ValueError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("the value is empty; give PEM text ('-----BEGIN ...') or base64 of PEM")
    text = value.strip()
    if PEM_MARKER in text:
        return text + "\n"
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("the value is neither PEM text ('-----BEGIN ...') nor base64 of PEM")
    if PEM_MARKER not in decoded:
        raise ValueError("the value is base64 but does not decode to PEM text ('-----BEGIN ...')")
    return decoded.strip() + "\n"


def load_certificates(value: str) -> list[x509.Certificate]:
    """All certificates of a PEM chain (PEM or base64 of PEM), leaf first; ValueError with a clear message."""
    text = load_pem_text(value)
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("no '-----BEGIN CERTIFICATE-----' block found; give X.509 certificates in PEM")
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        raise ValueError(f"the PEM certificate could not be parsed ({exc}); give X.509 certificates in PEM")


def load_private_key(value: str) -> Any:
    """An RSA, EC or Ed25519 private key from PEM (PKCS#1, SEC1 or PKCS#8); ValueError otherwise."""
    text = load_pem_text(value)
    if "ENCRYPTED" in text:
        raise ValueError(f"the private key is encrypted; the portal needs it unencrypted ({_KEY_FORMATS})")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise ValueError(f"the private key is encrypted; the portal needs it unencrypted ({_KEY_FORMATS})")
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"the private key could not be parsed ({exc}); give a {_KEY_FORMATS}")
    except Exception as exc:  # noqa: BLE001 - cryptography raises UnsupportedAlgorithm for exotic key types
        raise ValueError(f"the private key is not supported ({exc}); give a {_KEY_FORMATS}")
    if not isinstance(key, SUPPORTED_KEYS):
        raise ValueError(f"{type(key).__name__} keys are not supported; give a {_KEY_FORMATS}")
    return key


def _public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(certificate: x509.Certificate, key: Any) -> bool:
    return _public_der(certificate.public_key()) == _public_der(key.public_key())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def subject_names(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses the certificate is for; the CN only when there is no SAN extension (RFC 6125)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(attr.value) for attr in common_names], []
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return list(san.get_values_for_type(x509.DNSName)), ips


def certificate_summary(certificate: x509.Certificate) -> dict[str, Any]:
    dns_names, _ = subject_names(certificate)
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "dns_names": dns_names,
        "not_before": _iso(certificate.not_valid_before_utc),
        "not_after": _iso(certificate.not_valid_after_utc),
        "sha256_fingerprint": certificate.fingerprint(hashes.SHA256()).hex(),
    }


def san_covers(san: str, host: str) -> bool:
    """RFC 6125: `*.example.com` covers exactly one extra left-most label; a wildcard host only its own SAN."""
    # Not services.listeners.normal_host: a SAN has no `namespace/` prefix to drop, and a '/' in one must not be
    # read as one (a SAN `x/victim.example` covers nothing); only case and the trailing dot are ignored.
    san, host = san.lower().rstrip("."), host.lower().rstrip(".")
    if san == host:
        return True
    if not san.startswith("*.") or host.startswith("*"):
        return False
    label, dot, rest = host.partition(".")
    return bool(label) and bool(dot) and rest == san[2:]


def host_covered(host: str, dns_names: list[str], ips: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return any(san_covers(name, host) for name in dns_names)
    return any(ipaddress.ip_address(ip) == address for ip in ips)


@dataclass
class CertificateCheck:
    """The verdict on a piece of TLS material; `errors` is DRF-shaped, rooted at the tls_secret fields."""

    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    normalized: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, field_name: str, message: str) -> None:
        self.errors.setdefault(field_name, []).append(message)


def check_tls_material(
    *,
    cert: str,
    key: str,
    ca_cert: str | None,
    hosts: list[str],
    mode: str | None,
    now: datetime,
    warn_days: int = 30,
) -> CertificateCheck:
    """Parse and cross-check certificate chain, key and CA against the service's hosts and mode."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # certificate times are UTC; a naive `now` is taken to be UTC too
    check = CertificateCheck(normalized={"cert": None, "key": None, "ca_cert": None})
    chain = _parse_chain(check, cert)
    private_key = _parse_key(check, key)
    if chain:
        leaf = chain[0]
        check.summary = certificate_summary(leaf)
        check.normalized["cert"] = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
        _check_validity(check, leaf, now, warn_days)
        _check_hosts(check, leaf, hosts)
        if private_key is not None and not key_matches(leaf, private_key):
            check.add("key", "the private key does not match the certificate's public key; give the leaf's own key")
    _check_ca(check, ca_cert, mode)
    return check


def _parse_chain(check: CertificateCheck, cert: str) -> list[x509.Certificate]:
    try:
        return load_certificates(cert)
    except ValueError as exc:
        check.add("cert", str(exc))
        return []


def _parse_key(check: CertificateCheck, key: str) -> Any:
    try:
        private_key = load_private_key(key)
    except ValueError as exc:
        check.add("key", str(exc))
        return None
    check.normalized["key"] = load_pem_text(key)
    return private_key


def _check_validity(check: CertificateCheck, leaf: x509.Certificate, now: datetime, warn_days: int) -> None:
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now >= not_after:
        check.add("cert", f"the certificate expired on {_iso(not_after)}; give a certificate that is currently valid")
    elif now < not_before:
        check.add(
            "cert", f"the certificate is not valid before {_iso(not_before)}; give a certificate that is valid now"
        )
    elif not_after - now <= timedelta(days=warn_days):
        check.warnings.append(f"the certificate expires on {_iso(not_after)}, within {warn_days} days; renew it soon")


def _check_hosts(check: CertificateCheck, leaf: x509.Certificate, hosts: list[str]) -> None:
    dns_names, ips = subject_names(leaf)
    uncovered = [host for host in hosts if not host_covered(host, dns_names, ips)]
    if uncovered:
        names = ", ".join(dns_names + ips) or "(none)"
        check.add(
            "cert",
            f"the certificate does not cover {', '.join(uncovered)}; its names are {names}. "
            "Give a certificate whose subject alternative names cover every host",
        )


def _check_ca(check: CertificateCheck, ca_cert: str | None, mode: str | None) -> None:
    if not ca_cert:
        if mode == "MUTUAL":
            check.add("ca_cert", "mode MUTUAL needs ca_cert: the PEM CA bundle used to verify client certificates")
        return
    try:
        bundle = load_certificates(ca_cert)
    except ValueError as exc:
        check.add("ca_cert", str(exc))
        return
    check.normalized["ca_cert"] = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in bundle)


def inspect_secret_data(tls_crt_b64: str, tls_key_b64: str) -> str | None:
    """Why a kubernetes.io/tls Secret's `data` is unusable (unparseable, or key and certificate differ), or None."""
    try:
        cert_text = base64.b64decode(tls_crt_b64 or "", validate=True).decode("utf-8")
        key_text = base64.b64decode(tls_key_b64 or "", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "the secret's tls.crt or tls.key is not base64 of text"
    try:
        leaf = load_certificates(cert_text)[0]
    except ValueError as exc:
        return f"tls.crt: {exc}"
    try:
        key = load_private_key(key_text)
    except ValueError as exc:
        return f"tls.key: {exc}"
    if not key_matches(leaf, key):
        return "tls.key does not match the certificate in tls.crt"
    return None
