"""Development PKI: a certificate authority that mints VTN and VEN certificates for mutual TLS.

Owns key generation, certificate issuance, revocation lists and writing key material to disk.
For development, tests and load runs only; production nodes use certificates from the OpenADR
Alliance's PKI (see certs/README.md).

Invariants:
- EC P-256 keys by default (fast enough to mint thousands: no key reload per certificate); RSA-2048
  on request, for the TLS 1.2 suite TLS_RSA_WITH_AES_128_CBC_SHA256 that needs an RSA leaf.
- Every certificate is signed with SHA-256 and carries the key usages its role needs:
  the CA may only sign certificates and CRLs; a VTN certificate authenticates a TLS server and,
  for HTTP push delivery, a TLS client; a VEN certificate authenticates a TLS client, and a TLS
  server only when given host names (a push receiver).
- Private keys are written 0600 and never overwrite an existing file unless asked to.
- Fingerprints are the OpenADR form from :func:`schemas.identity.certificate_fingerprint`.

Its errors, under the message layer's root (:mod:`devpki.errors`); each is also the built-in
error it replaces::

    CrowdflexError (schemas)
    +-- DevpkiError               the development PKI's errors
        +-- PkiFileExists         a certificate or key file exists and ``force`` was not given;
        |                         also a FileExistsError
        +-- UnsupportedCaKey      a CA key neither EC nor RSA; also a ValueError
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from schemas import utc_now
from schemas.identity import certificate_fingerprint

from .errors import DevpkiError, PkiFileExists, UnsupportedCaKey

__all__ = [
    "CertificateAuthority",
    "DevpkiError",
    "IssuedCertificate",
    "KeyType",
    "PkiFileExists",
    "PrivateKey",
    "Role",
    "UnsupportedCaKey",
    "generate_key",
    "write_private_key",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Clock = Callable[[], datetime]

_ORGANIZATION: Final = "crowdflex development"
_LOOPBACK_HOSTS: Final = ("localhost", "127.0.0.1", "::1")
# Tolerate clocks a little behind ours: a certificate minted now must verify on them at once.
_BACKDATE: Final = timedelta(minutes=5)
_CA_LIFETIME: Final = timedelta(days=3650)
_LEAF_LIFETIME: Final = timedelta(days=825)


class KeyType(StrEnum):
    EC = "ec"
    RSA = "rsa"


class Role(StrEnum):
    VTN = "vtn"
    VEN = "ven"


def generate_key(key_type: KeyType) -> PrivateKey:
    """A fresh private key: EC P-256 or RSA-2048 (the sizes OpenADR 2.0b certificates use)."""
    match key_type:
        case KeyType.EC:
            return ec.generate_private_key(ec.SECP256R1())
        case KeyType.RSA:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_key(path: Path, key_pem: bytes, *, force: bool = False) -> None:
    """Write key material readable by its owner only (0600); refuse to replace a file unless forced.

    The file is created with mode 0600 from the start, so the key is never briefly world-readable.
    Raises :class:`PkiFileExists` (a ``FileExistsError``) when ``path`` exists and ``force`` is
    false.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise PkiFileExists(f"{path} exists") from None
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # an existing file, forced, keeps its old mode otherwise
        file.write(key_pem)


def _write_certificate(path: Path, cert_pem: bytes) -> None:
    path.write_bytes(cert_pem)


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedCertificate:
    """A certificate with its private key, as objects and as PEM, and its OpenADR fingerprint."""

    name: str
    role: Role
    certificate: x509.Certificate
    private_key: PrivateKey
    cert_pem: bytes
    key_pem: bytes
    fingerprint: str

    @classmethod
    def from_parts(
        cls, *, name: str, role: Role, certificate: x509.Certificate, private_key: PrivateKey
    ) -> IssuedCertificate:
        return cls(
            name=name,
            role=role,
            certificate=certificate,
            private_key=private_key,
            cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=_key_pem(private_key),
            fingerprint=certificate_fingerprint(
                certificate.public_bytes(serialization.Encoding.DER)
            ),
        )

    def write(self, directory: Path, *, force: bool = False) -> tuple[Path, Path]:
        """Write ``NAME.pem`` and ``NAME.key`` (0600) into ``directory``; return both paths.

        The key is written first, so a refused overwrite leaves the old certificate in place too.
        """
        cert_path, key_path = directory / f"{self.name}.pem", directory / f"{self.name}.key"
        if not force and cert_path.exists():
            raise PkiFileExists(f"{cert_path} exists")
        write_private_key(key_path, self.key_pem, force=force)
        _write_certificate(cert_path, self.cert_pem)
        return cert_path, key_path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def _leaf_usages(
    role: Role, public_key_is_rsa: bool, serves: bool
) -> tuple[x509.KeyUsage, x509.ExtendedKeyUsage]:
    # TLS_RSA_* key exchange encrypts the premaster secret to the server's RSA key: keyEncipherment.
    usage = x509.KeyUsage(
        digital_signature=True,
        key_encipherment=public_key_is_rsa,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    # A VTN is also a TLS client when it pushes to a VEN; a VEN serves only as a push receiver.
    purposes = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role is Role.VTN or serves:
        purposes.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    return usage, x509.ExtendedKeyUsage(purposes)


def _authority_key_id(ca: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:  # an imported CA may lack it; derive it from the key instead
        public_key = ca.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise UnsupportedCaKey("CA key must be EC or RSA") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


class CertificateAuthority:
    """A signing CA kept in memory: load or create it once, then ``issue`` as many as needed."""

    __slots__ = ("_authority_key_id", "_clock", "certificate", "private_key")

    def __init__(
        self,
        *,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        clock: Clock = utc_now,
    ) -> None:
        self.certificate = certificate
        self.private_key = private_key
        self._clock = clock
        # Built once: every issued certificate names its issuer's key (RFC 5280 4.2.1.1).
        self._authority_key_id = _authority_key_id(certificate)

    @classmethod
    def create(
        cls,
        *,
        common_name: str = "crowdflex development CA",
        key_type: KeyType = KeyType.EC,
        clock: Clock = utc_now,
    ) -> CertificateAuthority:
        """A new self-signed CA (may sign end-entity certificates only: path length 0)."""
        key = generate_key(key_type)
        now = clock()
        public_key = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    key_encipherment=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate=certificate, private_key=key, clock=clock)

    @classmethod
    def load(
        cls, cert_path: Path, key_path: Path, *, clock: Clock = utc_now
    ) -> CertificateAuthority:
        """The CA whose certificate and unencrypted private key are in these PEM files."""
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise UnsupportedCaKey(
                f"{key_path}: CA key must be EC or RSA, not {type(key).__name__}")
        return cls(certificate=certificate, private_key=key, clock=clock)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate.public_bytes(serialization.Encoding.DER))

    def write(self, directory: Path, *, name: str = "ca", force: bool = False) -> tuple[Path, Path]:
        """Write ``NAME.pem`` and ``NAME.key`` (0600) into ``directory``; return both paths."""
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        if not force and cert_path.exists():
            raise PkiFileExists(f"{cert_path} exists")
        write_private_key(key_path, _key_pem(self.private_key), force=force)
        _write_certificate(cert_path, self.cert_pem)
        return cert_path, key_path

    def issue(
        self,
        name: str,
        role: Role = Role.VEN,
        *,
        key_type: KeyType = KeyType.EC,
        hosts: Iterable[str] | None = None,
        lifetime: timedelta = _LEAF_LIFETIME,
    ) -> IssuedCertificate:
        """Mint a certificate with common name ``name`` for ``role``.

        ``hosts`` are the DNS names and IP addresses a TLS server answers on (subjectAltName).
        They default to the loopback names for a VTN and to none for a VEN; giving any to a VEN
        makes its certificate valid for a push receiver (serverAuth).
        """
        key = generate_key(key_type)
        public_key = key.public_key()
        names = tuple(_LOOPBACK_HOSTS if hosts is None and role is Role.VTN else hosts or ())
        usage, extended = _leaf_usages(role, isinstance(key, rsa.RSAPrivateKey), bool(names))
        now = self._clock()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(extended, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_id, critical=False)
        )
        if names:
            builder = builder.add_extension(_subject_alt_names(names), critical=False)
        certificate = builder.sign(self.private_key, hashes.SHA256())
        return IssuedCertificate.from_parts(
            name=name, role=role, certificate=certificate, private_key=key
        )

    def revocation_list(
        self, revoked: Iterable[x509.Certificate], *, next_update: timedelta = timedelta(days=7)
    ) -> bytes:
        """A signed CRL (PEM) listing ``revoked``, for a VTN's or VEN's revocation check."""
        now = self._clock()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - _BACKDATE)
            .next_update(now + next_update)
        )
        for certificate in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(certificate.serial_number)
                .revocation_date(now - _BACKDATE)
                .build()
            )
        crl = builder.sign(self.private_key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)

    def verify(self, certificate: x509.Certificate) -> None:
        """Raise if ``certificate`` was not signed by this CA (signature and issuer name)."""
        certificate.verify_directly_issued_by(self.certificate)
