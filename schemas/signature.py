"""Who signs and whom we believe: :class:`Signer`, :class:`Verifier` and :class:`Verification`.

OpenADR 2.0b profile, section 10 (security): payloads may carry an XML signature (RSA-SHA256 or
ECDSA-SHA256) made with the node's X.509 key, with the certificate in ds:KeyInfo. Keys and
certificates are loaded once, when these objects are built; signing and verifying then cost a c14n
pass, two SHA-256 digests and one public-key operation per message.

Trust: the carried certificates must first pass :func:`schemas.certpath.check_carried` (how many,
distinct subjects, keys TLS would accept and that are cheap to check); then the signer's
certificate (the first ds:X509Certificate) must be one of the trusted certificates (pinned: trusted
as itself, validity checked), or pass the same certificate-path check
a TLS peer passes (:class:`schemas.certpath.PathCheck`: the trusted CA certificates as anchors, the
CA certificates carried in ds:X509Data as intermediates, pathLen, KeyUsage, ExtendedKeyUsage for
the signer's ``purpose``, and the CRLs when the node has any). A :class:`Verifier` remembers
(bounded) the exact carried chains it found trusted, so a known signer costs no certificate parse
or path building; the signature value, the digests, every validity period on its path and its
revocation are still checked per message, and chains that failed are never remembered. Binding the
signer to a venID is the services' job: they get the certificate in :class:`Verification`.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from lxml import etree

from . import _dsig
from ._errors import CertificateRefused, SignatureInvalid
from .certpath import Crls, PathCheck, Purpose, check_carried
from .identity import certificate_fingerprint

__all__ = ["Signer", "Verification", "Verifier"]

_MAX_CHAINS: Final = 1024  # trusted signer chains remembered per Verifier (oldest dropped first)


def _load_certificates(pems: bytes | Iterable[bytes]) -> tuple[x509.Certificate, ...]:
    chunks = (pems,) if isinstance(pems, bytes) else tuple(pems)
    return tuple(cert for pem in chunks for cert in x509.load_pem_x509_certificates(pem))


class Signer:
    """A loaded private key and its certificate chain (leaf first); signs SignedInfo bytes."""

    __slots__ = ("_key", "algorithm", "certificate", "certificates_b64", "template")

    def __init__(
        self, private_key_pem: bytes, certificate_pem: bytes, *, password: bytes | None = None
    ) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password)
        chain = _load_certificates(certificate_pem)
        if not chain:
            raise ValueError("no certificate in certificate_pem")
        match key:
            case rsa.RSAPrivateKey() if key.key_size >= 2048:
                self.algorithm = _dsig.RSA_SHA256
            case ec.EllipticCurvePrivateKey():
                self.algorithm = _dsig.ECDSA_SHA256
            case _:
                raise ValueError(f"{type(key).__name__}: need RSA >= 2048 bits or an EC key")
        if chain[0].public_key() != key.public_key():
            raise ValueError("the first certificate does not belong to the private key")
        self._key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = key
        self.certificate = chain[0]
        self.certificates_b64 = tuple(
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
            for c in chain
        )
        # Copied for every signature; the copy is filled in, this one is only ever read.
        self.template = _dsig.signature_template(self.algorithm, self.certificates_b64)

    @classmethod
    def from_files(
        cls, private_key: str | Path, certificate: str | Path, *, password: bytes | None = None
    ) -> Signer:
        key, cert = Path(private_key).read_bytes(), Path(certificate).read_bytes()
        return cls(key, cert, password=password)

    def sign(self, data: bytes) -> bytes:
        """The raw ds:SignatureValue of ``data``: PKCS#1 v1.5 for RSA, r||s for ECDSA."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        der = self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        return _dsig.raw_ecdsa(der, self._key.curve.key_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Chain:
    """A carried certificate chain whose issuer signatures led to a trusted certificate."""

    certificates: tuple[x509.Certificate, ...]  # as carried, signer first
    key: CertificatePublicKeyTypes  # the signer's
    signer_fingerprint: str  # the signer's OpenADR fingerprint (schemas.identity)
    path: tuple[x509.Certificate, ...]  # signer, intermediates walked, anchor: validity per use


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """A signature that verified: who signed, and the ReplayProtect values it carried."""

    certificate: x509.Certificate
    timestamp: datetime
    nonce: str
    #: ``certificate_fingerprint`` of the signer's DER certificate (as a TLS peer's is written),
    #: worked out once per trusted chain, not per message.
    signer_fingerprint: str

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the signer's DER certificate."""
        return self.certificate.fingerprint(hashes.SHA256())


class Verifier:
    """Checks ds:Signature elements against a fixed set of trusted (pinned or CA) certificates.

    ``purpose``: what a signer must be certified for (a VTN checks VENs: CLIENT; a VEN checks its
    VTN: SERVER); ``crls``: the node's revocation lists, asked at every check.
    """

    __slots__ = ("_chains", "_lock", "_path_check", "_pinned")

    def __init__(self, trusted_certificates_pem: bytes | Iterable[bytes], *,
                 purpose: Purpose = Purpose.CLIENT, crls: Crls | None = None) -> None:
        trusted = _load_certificates(trusted_certificates_pem)
        if not trusted:
            raise ValueError("no trusted certificate given")
        self._pinned = frozenset(c.fingerprint(hashes.SHA256()) for c in trusted)
        anchors = [c for c in trusted if _is_ca(c)]
        self._path_check = PathCheck(anchors, purpose=purpose, crls=crls) if anchors else None
        # Carried chains (exact DER bytes) already found trusted, so a known signer costs one
        # validity check per certificate instead of a parse and a path building each.
        self._chains: dict[tuple[bytes, ...], _Chain] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_files(cls, *paths: str | Path, purpose: Purpose = Purpose.CLIENT,
                   crls: Crls | None = None) -> Verifier:
        return cls(tuple(Path(path).read_bytes() for path in paths), purpose=purpose, crls=crls)

    def verify(
        self, root: etree._Element, signature: etree._Element, now: datetime
    ) -> Verification:
        """Structure, signature value, trust, then digests, cheapest first, so a refusal costs
        no more than the check that refused it; :class:`SignatureInvalid` says which failed."""
        try:
            parts = _dsig.read(root, signature)
            chain = self._chains.get(parts.certificate_ders)
            if chain is None:
                chain = self._first_sight(parts, now)
            else:
                _dsig.check_value(parts, chain.key)
                for certificate in chain.path:
                    _check_validity(certificate, now)
                self._check_revocation(chain.path, now)
            _dsig.check_digests(parts)
        except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
            # The certificates come from the peer and cryptography parses them lazily: a bad
            # version, key type, curve, name or extension surfaces here, deep inside the checks.
            raise SignatureInvalid(f"malformed signature: unreadable certificate: {exc}") from None
        return Verification(
            certificate=chain.certificates[0], timestamp=parts.timestamp, nonce=parts.nonce,
            signer_fingerprint=chain.signer_fingerprint,
        )

    def _first_sight(self, parts: _dsig.SignedParts, now: datetime) -> _Chain:
        """Parse, check the value with and walk a chain not seen before; remember it if trusted."""
        certificates = _dsig.load_certificates(parts.certificate_ders)
        try:
            check_carried(certificates)  # bounds what the next two steps may cost
        except CertificateRefused as exc:
            raise SignatureInvalid(f"untrusted certificate: {exc}") from None
        key = certificates[0].public_key()
        _dsig.check_value(parts, key)
        chain = _Chain(
            certificates=certificates, key=key, path=self._check_trust(certificates, now),
            signer_fingerprint=certificate_fingerprint(parts.certificate_ders[0]),
        )
        with self._lock:
            if len(self._chains) >= _MAX_CHAINS:
                del self._chains[next(iter(self._chains))]  # oldest first: a bounded memory
            self._chains[parts.certificate_ders] = chain
        return chain

    def _check_trust(
        self, chain: Sequence[x509.Certificate], now: datetime
    ) -> tuple[x509.Certificate, ...]:
        """The path the signer is trusted by: itself when pinned, else the validated path to an
        anchor (every certificate on it is rechecked for validity on later uses)."""
        leaf = chain[0]
        if leaf.fingerprint(hashes.SHA256()) in self._pinned:
            _check_validity(leaf, now)
            return (leaf,)
        if self._path_check is None:
            raise SignatureInvalid(
                f"untrusted certificate: signer {leaf.subject.rfc4514_string()!r} "
                f"(issuer {leaf.issuer.rfc4514_string()!r}) is not pinned and no trusted CA "
                "issued it")
        try:
            return self._path_check.path(leaf, chain[1:], now)
        except CertificateRefused as exc:
            raise SignatureInvalid(f"untrusted certificate: {exc}") from None

    def _check_revocation(self, path: tuple[x509.Certificate, ...], now: datetime) -> None:
        if self._path_check is None or len(path) < 2:  # pinned: trusted as itself
            return
        try:
            self._path_check.check_revocation(path, now)
        except CertificateRefused as exc:
            raise SignatureInvalid(f"untrusted certificate: {exc}") from None


def _check_validity(certificate: x509.Certificate, now: datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignatureInvalid(
            f"untrusted certificate: {certificate.subject.rfc4514_string()!r} is valid from "
            f"{certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()}, not at {now.isoformat()}"
        )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
