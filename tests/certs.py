"""Test certificates generated on the fly with `cryptography`: no fixtures on disk, nothing that expires in the repo.

leaf = make_cert(dns_names=["app.example.com"])             # self-signed RSA, valid now
ca = make_ca(); leaf = make_cert(issuer=ca, key_type="ec")   # CA-signed EC leaf
leaf.cert_pem, leaf.key_pem, leaf.key_pem_pkcs1, leaf.cert_b64
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

KeyType = Literal["rsa", "ec", "ed25519"]


@dataclass(frozen=True)
class Generated:
    certificate: x509.Certificate
    key: Any

    @property
    def cert_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        """PKCS#8, unencrypted."""
        return self._key(serialization.PrivateFormat.PKCS8)

    @property
    def key_pem_pkcs1(self) -> str:
        """PKCS#1 ('BEGIN RSA PRIVATE KEY') for RSA, SEC1 ('BEGIN EC PRIVATE KEY') for EC."""
        return self._key(serialization.PrivateFormat.TraditionalOpenSSL)

    def key_pem_encrypted(self, password: bytes = b"secret") -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        ).decode()

    @property
    def cert_b64(self) -> str:
        return b64(self.cert_pem)

    @property
    def key_b64(self) -> str:
        return b64(self.key_pem)

    def _key(self, fmt: serialization.PrivateFormat) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make_key(key_type: KeyType = "rsa") -> Any:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_cert(
    *,
    common_name: str = "test.example.com",
    dns_names: list[str] | None = None,
    ip_addresses: list[str] | None = None,
    san: bool = True,
    issuer: Generated | None = None,
    key_type: KeyType = "rsa",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    is_ca: bool = False,
) -> Generated:
    """A certificate valid from yesterday for 90 days unless told otherwise; self-signed unless `issuer` is given.

    `dns_names` defaults to [common_name]; `san=False` omits the SubjectAlternativeName extension altogether.
    """
    key = make_key(key_type)
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if san:
        dns = [common_name] if dns_names is None else dns_names
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses or []]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    signer = issuer.key if issuer else key
    # Ed25519 signs without a separate hash algorithm.
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Generated(certificate=builder.sign(signer, algorithm), key=key)


def make_ca(common_name: str = "Test CA", key_type: KeyType = "rsa") -> Generated:
    return make_cert(common_name=common_name, san=False, is_ca=True, key_type=key_type)
