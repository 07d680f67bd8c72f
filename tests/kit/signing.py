"""Signing identities for the XML-signature tests: a key and a self-signed certificate made here
with ``cryptography`` (never committed), a signer/verifier pair, an injected clock, and the
namespaces the tests look into. Imports nothing above :mod:`schemas`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import schemas
from tests.kit.clock import Clock

__all__ = ["DS", "OADR", "POLL", "T0", "Identity", "PrivateKey", "make_identity", "pair"]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DS = "{http://www.w3.org/2000/09/xmldsig#}"
OADR = "{http://openadr.org/oadr-2.0b/2012/07}"


@dataclass(frozen=True)
class Identity:
    key: PrivateKey
    certificate: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def signer(self, *chain: Identity) -> schemas.Signer:
        return schemas.Signer(self.key_pem, self.cert_pem + b"".join(c.cert_pem for c in chain))


def make_identity(
    name: str,
    *,
    kind: str = "ec",
    issuer: Identity | None = None,
    ca: bool = False,
    valid: tuple[datetime, datetime] = (T0 - timedelta(days=30), T0 + timedelta(days=365)),
) -> Identity:
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    certificate = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Identity(key, certificate)


def pair(
    signer: schemas.Signer, trusted: bytes, schema: schemas.SchemaSet, clock: Clock
) -> tuple[schemas.Codec, schemas.Codec]:
    """A signing sender and a verifying receiver sharing one clock."""
    sender = schemas.Codec(schema=schema, signer=signer, clock=clock, validate_output=True)
    receiver = schemas.Codec(schema=schema, verifier=schemas.Verifier(trusted), clock=clock)
    return sender, receiver


POLL = schemas.Poll(ven_id="000123")
