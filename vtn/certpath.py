"""Certificate-path checks the VTN makes itself, outside a TLS handshake.

Two callers need them: the certificate a trusted TLS-terminating proxy forwards in a header
(:class:`vtn.transport.PeerIdentity`) must pass what the TLS layer would have demanded of it, and
connections already open must be closed when the CRL file starts revoking their certificate.

:class:`CertificatePath` holds the VTN's trust anchors (``tls_ca``) and, when configured, its
revocation lists (``tls_crl``, read by :class:`vtn.revocation.CrlFile`), re-read when the file
changes (as :mod:`vtn.revocation` does for the TLS layer). :meth:`CertificatePath.verify` checks,
at the injected clock: the chain to a trust anchor under the rules OpenSSL applies to a TLS client
(:class:`schemas.certpath.PathCheck`, the one path check the XML-signature verifier uses too:
signatures, validity dates, basic constraints and path length, a KeyUsage with digitalSignature or
keyAgreement, the clientAuth extended key usage) and, as ``VERIFY_CRL_CHECK_LEAF`` does in the
handshake, that a CRL signed by the leaf's issuer exists, is current and does not list the leaf
(:meth:`~schemas.certpath.PathCheck.check_revocation`, the check the signatures use too).

Invariants: every refusal is a :class:`CertificateRejected` with a reason; a CRL file that cannot
be read keeps the last good lists (never opens the door); nothing here does I/O beyond reading the
CA and CRL files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from schemas import CertificateRefused, utc_now
from schemas.certpath import PathCheck, Purpose
from schemas.identity import certificate_fingerprint
from vtn.errors import VtnError
from vtn.revocation import CrlFile

__all__ = ["CertificatePath", "CertificateRejected"]

log = logging.getLogger(__name__)

class CertificateRejected(VtnError, ValueError):
    """A certificate the VTN's trust anchors, validity rules or revocation lists refuse."""


class CertificatePath:
    """The VTN's trust anchors and revocation lists; ``generation`` counts CRL versions taken
    into use (it changes exactly when :meth:`refresh` answers True)."""

    __slots__ = ("_clock", "_crls", "_rules")

    def __init__(self, *, ca: Path, crl: Path | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        # the first read must succeed, as for the TLS context
        self._crls = None if crl is None else CrlFile(crl)
        anchors = tuple(x509.load_pem_x509_certificates(Path(ca).read_bytes()))
        # Checks take the lists in use; only refresh() takes a changed file into use, so the
        # caller that closes revoked connections sees every change.
        lists = None if self._crls is None else self._lists
        self._rules = PathCheck(anchors, purpose=Purpose.CLIENT, crls=lists)
        self._clock = clock

    @property
    def generation(self) -> int:
        return 0 if self._crls is None else self._crls.generation

    def _lists(self) -> tuple[x509.CertificateRevocationList, ...]:
        return () if self._crls is None else self._crls.lists

    def now(self) -> datetime:
        """The injected clock's time, at which :meth:`verify` judges validity."""
        return self._clock()

    def refresh(self) -> bool:
        """Re-read the CRL file if it changed; True when a new version was taken into use."""
        return self._crls is not None and self._crls.refresh()

    def verify(self, pem: str | bytes) -> tuple[str, datetime]:
        """The OpenADR fingerprint of the leaf of ``pem`` (leaf first, then any intermediates)
        and until when that answer holds (the leaf's expiry, or the CRLs' next update if
        sooner); :class:`CertificateRejected` when the TLS layer would refuse the chain."""
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
        try:
            leaf, *intermediates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise CertificateRejected(f"not a PEM certificate: {exc}") from None
        try:
            chain = self._rules.path(leaf, intermediates, self.now())
        except CertificateRefused as exc:
            raise CertificateRejected(f"certificate path refused: {exc}") from None
        if len(chain) < 2:
            raise CertificateRejected("a trust anchor is not a VEN's certificate")
        # the issuer's lists were found current by the path check: the answer holds until the
        # soonest of their next updates
        updates = [crl.next_update_utc for crl in self._lists()
                   if crl.issuer == chain[1].subject and crl.next_update_utc is not None]
        until = min((leaf.not_valid_after_utc, *updates))
        return certificate_fingerprint(leaf.public_bytes(serialization.Encoding.DER)), until

    def revoked(self, der: bytes) -> bool:
        """Whether the current lists revoke the certificate ``der`` (an open connection's peer)."""
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return False
        return any(crl.issuer == certificate.issuer and
                   crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
                   is not None for crl in self._lists())
