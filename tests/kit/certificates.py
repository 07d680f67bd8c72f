"""Certificates a penetration tester would try against the VTN (a CA with a shifted clock, a
leaf for server auth only, candidate signing identities) and whether the VTN's TLS accepts them."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from devpki import CertificateAuthority, IssuedCertificate, KeyType, Role, generate_key
from schemas import Codec, Poll, Signer
from schemas.tls import client_context
from tests.kit.pki import Pki

__all__ = ["REFUSED", "Candidate", "server_auth_only", "shifted_authority", "tls_accepts"]

#: what a client sees when the VTN refuses its TLS handshake
REFUSED = (aiohttp.ClientError, ssl.SSLError, ConnectionError)


def shifted_authority(pki: Pki, shift: timedelta) -> CertificateAuthority:
    """The session CA, minting as if its clock were ``shift`` away from now."""
    return CertificateAuthority(certificate=pki.authority.certificate,
                                private_key=pki.authority.private_key,
                                clock=lambda: datetime.now(UTC) + shift)


def server_auth_only(pki: Pki, name: str) -> IssuedCertificate:
    """A leaf the trusted CA signed for TLS servers only (no clientAuth): the wrong key usage."""
    key = generate_key(KeyType.EC)
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder().subject_name(subject)
        .issuer_name(pki.authority.certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(pki.authority.private_key, hashes.SHA256())
    )
    return IssuedCertificate.from_parts(name=name, role=Role.VTN, certificate=certificate,
                                        private_key=key)


class Candidate:
    """A certificate (with the chain it carries) on disk: as a TLS client and as a signer."""

    def __init__(self, leaf: IssuedCertificate, directory: Path,
                 chain: tuple[IssuedCertificate, ...] = ()) -> None:
        self.cert_pem = leaf.cert_pem + b"".join(c.cert_pem for c in chain)
        self.cert = directory / f"{leaf.name}.pem"
        self.key = directory / f"{leaf.name}.key"
        self.cert.write_bytes(self.cert_pem)
        self.key.write_bytes(leaf.key_pem)
        self.key.chmod(0o600)

    def signer(self) -> Signer:
        return Signer(self.key.read_bytes(), self.cert_pem)


async def tls_accepts(url: str, pki: Pki, candidate: Candidate) -> bool:
    context = client_context(cert=candidate.cert, key=candidate.key, ca=pki.ca_cert)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            body = Codec().encode(Poll(ven_id="nobody"))
            async with session.post(f"{url}/OadrPoll", data=body,
                                    headers={"Content-Type": "application/xml"}) as reply:
                await reply.read()  # any HTTP answer: the handshake let it in
                return True
    except REFUSED:
        return False
