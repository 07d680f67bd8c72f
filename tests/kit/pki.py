"""The test session's PKI: a trusted CA with VTN and VEN certificates, and an untrusted CA.

Everything is minted by :mod:`devpki` (EC P-256, a few milliseconds) into temporary directories;
nothing is committed. Tests that need mutual TLS use the ``pki`` fixture's paths and
fingerprints, or build contexts with ``pki.server_context(...)`` / ``pki.client_context(...)``.

Layout of :class:`Pki`:

- ``ca_cert``: the CA every trusted node verifies against; ``authority`` mints more from it.
- ``vtn``: a VTN certificate for localhost / 127.0.0.1 / ::1.
- ``vens``: several VEN certificates (client auth only).
- ``revoked_ven`` + ``crl``: a VEN certificate the CRL at ``crl`` revokes.
- ``untrusted_ca_cert``, ``untrusted_vtn``, ``untrusted_ven``: from a second CA nobody trusts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from devpki import CertificateAuthority, IssuedCertificate, Role
from schemas.identity import TlsProfile
from ven.tls import client_context
from vtn.tls import server_context

__all__ = ["CertFiles", "Pki", "cert_files", "mint_pki"]

_VEN_COUNT = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFiles:
    """One certificate on disk, with its key, PEM text and OpenADR fingerprint."""

    name: str
    cert: Path
    key: Path
    cert_pem: bytes
    fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    directory: Path
    authority: CertificateAuthority
    ca_cert: Path
    ca_fingerprint: str
    vtn: CertFiles
    vens: tuple[CertFiles, ...]
    revoked_ven: CertFiles
    crl: Path
    untrusted_ca_cert: Path
    untrusted_vtn: CertFiles
    untrusted_ven: CertFiles

    @property
    def ven(self) -> CertFiles:
        """The first trusted VEN, for tests that need just one."""
        return self.vens[0]

    def server_context(
        self,
        *,
        vtn: CertFiles | None = None,
        ca: Path | None = None,
        profile: TlsProfile = TlsProfile.TLS13,
        crl: Path | None = None,
    ) -> ssl.SSLContext:
        """A VTN server context (default: the trusted VTN, trusting the trusted CA)."""
        chosen = vtn or self.vtn
        return server_context(
            cert=chosen.cert, key=chosen.key, ca=ca or self.ca_cert, profile=profile, crl=crl
        )

    def client_context(
        self,
        *,
        ven: CertFiles | None = None,
        ca: Path | None = None,
        profile: TlsProfile = TlsProfile.TLS13,
    ) -> ssl.SSLContext:
        """A VEN client context (default: the first trusted VEN, trusting the trusted CA)."""
        chosen = ven or self.ven
        return client_context(
            cert=chosen.cert, key=chosen.key, ca=ca or self.ca_cert, profile=profile
        )


def cert_files(issued: IssuedCertificate, directory: Path) -> CertFiles:
    cert, key = issued.write(directory)
    return CertFiles(
        name=issued.name,
        cert=cert,
        key=key,
        cert_pem=issued.cert_pem,
        fingerprint=issued.fingerprint,
    )


def mint_pki(trusted_dir: Path, untrusted_dir: Path) -> Pki:
    """A trusted CA and its certificates in ``trusted_dir``, a stranger's in ``untrusted_dir``."""
    authority = CertificateAuthority.create(common_name="crowdflex test CA")
    stranger = CertificateAuthority.create(common_name="untrusted test CA")
    ca_cert, _ = authority.write(trusted_dir)
    untrusted_ca_cert, _ = stranger.write(untrusted_dir)
    revoked = authority.issue("ven-revoked", Role.VEN)
    crl = trusted_dir / "crl.pem"
    crl.write_bytes(authority.revocation_list((revoked.certificate,)))
    return Pki(
        directory=trusted_dir,
        authority=authority,
        ca_cert=ca_cert,
        ca_fingerprint=authority.fingerprint,
        vtn=cert_files(authority.issue("vtn", Role.VTN), trusted_dir),
        vens=tuple(
            cert_files(authority.issue(f"ven-{index}", Role.VEN), trusted_dir)
            for index in range(_VEN_COUNT)
        ),
        revoked_ven=cert_files(revoked, trusted_dir),
        crl=crl,
        untrusted_ca_cert=untrusted_ca_cert,
        untrusted_vtn=cert_files(stranger.issue("vtn", Role.VTN), untrusted_dir),
        untrusted_ven=cert_files(stranger.issue("ven-untrusted", Role.VEN), untrusted_dir),
    )
