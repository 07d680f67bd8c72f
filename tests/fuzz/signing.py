"""A throw-away signing identity for the signed-message fuzz tests (made here, never committed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import schemas

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def identity(name: str = "fuzz-ven") -> tuple[bytes, bytes]:
    """(private key PEM, self-signed certificate PEM), EC P-256, valid around :data:`T0`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def receiver(schema: schemas.SchemaSet, trusted_pem: bytes) -> schemas.Codec:
    """A verifying codec with its own fresh ReplayGuard, its clock fixed at :data:`T0`."""
    return schemas.Codec(
        schema=schema,
        verifier=schemas.Verifier(trusted_pem),
        replay=schemas.ReplayGuard(),
        clock=lambda: T0,
        require_signature=True,
    )
