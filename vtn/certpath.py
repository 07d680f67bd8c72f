"""Certificate-path checks the VTN makes itself, outside a TLS handshake.

Two callers need them: the certificate a trusted TLS-terminating proxy forwards in a header
(:class:`vtn.transport.PeerIdentity`) must pass what the TLS layer would have demanded of it, and
connections already open must be closed when the CRL file starts revoking their certificate.

:class:`CertificatePath` holds the VTN's trust anchors (``tls_ca``) and, when configured, its
revocation lists (``tls_crl``), re-read when the file changes (as :mod:`vtn.revocation` does for
the TLS layer). :meth:`CertificatePath.verify` checks, at the injected clock: the chain to a
trust anchor under the rules OpenSSL applies to a TLS client (:class:`schemas.certpath.PathCheck`,
the one path check the XML-signature verifier uses too: signatures, validity dates, basic
constraints and path length, a KeyUsage with digitalSignature or keyAgreement, the clientAuth
extended key usage) and, as ``VERIFY_CRL_CHECK_LEAF`` does in the handshake, that a current CRL
signed by the leaf's issuer exists and does not list the leaf.

Invariants: every refusal is a :class:`CertificateRejected` with a reason; a CRL file that cannot
be read keeps the last good lists (never opens the door); nothing here does I/O beyond reading the
CA and CRL files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from schemas import CertificateRefused, utc_now
from schemas.certpath import PathCheck, Purpose
from schemas.identity import certificate_fingerprint
from vtn.errors import VtnError

__all__ = ["CertificatePath", "CertificateRejected", "FileVersion", "file_version", "load_crls"]

log = logging.getLogger(__name__)

FileVersion = tuple[int, int, int]
_CRL_BEGIN = b"-----BEGIN X509 CRL-----"


class CertificateRejected(VtnError, ValueError):
    """A certificate the VTN's trust anchors, validity rules or revocation lists refuse."""


def load_crls(data: bytes) -> tuple[x509.CertificateRevocationList, ...]:
    """Every CRL in ``data`` (PEM, one or several, or a single DER list)."""
    if _CRL_BEGIN not in data:
        return (x509.load_der_x509_crl(data),)
    end = b"-----END X509 CRL-----"
    blocks = [chunk.split(end, 1)[0] for chunk in data.split(_CRL_BEGIN)[1:]]
    return tuple(x509.load_pem_x509_crl(_CRL_BEGIN + block + end + b"\n") for block in blocks)


def file_version(path: Path) -> FileVersion | None:
    """What tells one version of a file from the next (mtime, size, inode), one ``stat``; None
    when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class CertificatePath:
    """The VTN's trust anchors and revocation lists; ``generation`` counts CRL versions taken
    into use (it changes exactly when :meth:`refresh` answers True)."""

    __slots__ = ("_anchors", "_clock", "_crl_path", "_crls", "_rules", "_seen", "generation")

    def __init__(self, *, ca: Path, crl: Path | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._anchors = tuple(x509.load_pem_x509_certificates(Path(ca).read_bytes()))
        self._rules = PathCheck(self._anchors, purpose=Purpose.CLIENT)  # CRL: _check_not_revoked
        self._clock = clock
        self._crl_path = None if crl is None else Path(crl)
        self._crls: tuple[x509.CertificateRevocationList, ...] = ()
        self._seen: FileVersion | None = None
        self.generation = 0
        if self._crl_path is not None:  # the first read must succeed, as for the TLS context
            self._seen = file_version(self._crl_path)
            self._crls = load_crls(self._crl_path.read_bytes())

    def now(self) -> datetime:
        """The injected clock's time, at which :meth:`verify` judges validity."""
        return self._clock()

    def refresh(self) -> bool:
        """Re-read the CRL file if it changed; True when a new version was taken into use."""
        if self._crl_path is None:
            return False
        version = file_version(self._crl_path)
        if version is None or version == self._seen:
            return False
        self._seen = version
        try:
            crls = load_crls(self._crl_path.read_bytes())
        except (OSError, ValueError) as exc:
            log.error("CRL %s could not be loaded (%s); still using the previous list",
                      self._crl_path, exc)
            return False
        self._crls = crls
        self.generation += 1
        return True

    def verify(self, pem: str | bytes) -> tuple[str, datetime]:
        """The OpenADR fingerprint of the leaf of ``pem`` (leaf first, then any intermediates)
        and until when that answer holds (the leaf's expiry, or the CRLs' next update if
        sooner); :class:`CertificateRejected` when the TLS layer would refuse the chain."""
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
        try:
            leaf, *intermediates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise CertificateRejected(f"not a PEM certificate: {exc}") from None
        now = self.now()
        try:
            chain = self._rules.path(leaf, intermediates, now)
        except CertificateRefused as exc:
            raise CertificateRejected(f"certificate path refused: {exc}") from None
        if len(chain) < 2:
            raise CertificateRejected("a trust anchor is not a VEN's certificate")
        until = leaf.not_valid_after_utc
        if self._crl_path is not None:
            until = min(until, self._check_not_revoked(leaf, chain[1], now))
        return certificate_fingerprint(leaf.public_bytes(serialization.Encoding.DER)), until

    def revoked(self, der: bytes) -> bool:
        """Whether the current lists revoke the certificate ``der`` (an open connection's peer)."""
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return False
        return any(crl.issuer == certificate.issuer and
                   crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
                   is not None for crl in self._crls)

    def _check_not_revoked(self, leaf: x509.Certificate, issuer: x509.Certificate,
                           now: datetime) -> datetime:
        """Refuses a revoked ``leaf``; until when the answer holds (the lists' next update)."""
        # VERIFY_CRL_CHECK_LEAF: a CRL of the leaf's issuer, validly signed and current, must be
        # at hand; without one OpenSSL refuses the handshake, and so do we.
        current = [crl for crl in self._crls
                   if crl.issuer == issuer.subject and _signed_by(crl, issuer)
                   and crl.last_update_utc <= now
                   and (crl.next_update_utc is None or now <= crl.next_update_utc)]
        if not current:
            raise CertificateRejected("no current CRL from the certificate's issuer")
        if any(crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
               for crl in current):
            raise CertificateRejected("certificate revoked")
        return min((crl.next_update_utc for crl in current if crl.next_update_utc is not None),
                   default=datetime.max.replace(tzinfo=UTC))


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
