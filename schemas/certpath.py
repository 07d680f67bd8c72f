"""One certificate-path check: the rules the TLS handshake applies to a peer, for certificates that
arrive another way (the signer of an XML signature).

OpenADR 2.0b profile, section 10 (security): nodes authenticate with X.509 certificates chaining to
the trusted CAs. OpenSSL checks a TLS peer's chain during the handshake (:mod:`schemas.tls`); a
signer's chain comes inside a document, after it. :class:`PathCheck` holds that chain to what the
handshake enforces, using cryptography's RFC 5280 verifier (path building, issuer signatures,
validity at ``now``, BasicConstraints and pathLenConstraint) with the purpose rules OpenSSL applies
to a TLS client (``ssl_client``) or server (``ssl_server``):

- every CA on the path: BasicConstraints CA:TRUE; a KeyUsage, when present, with keyCertSign;
- the end entity: a KeyUsage, when present, with digitalSignature or keyAgreement;
- every certificate on the path: an ExtendedKeyUsage, when present, naming the purpose
  (clientAuth for a VEN, serverAuth for a VTN);
- revocation as the VTN's TLS checks it (``VERIFY_CRL_CHECK_LEAF``): when CRLs are configured,
  the end entity's issuer must have one among them, signed by it and current at ``now``, and it
  must not list the end entity.

Before any of that, :func:`check_carried` bounds what a sender may make path building cost: at most
:data:`MAX_CARRIED` certificates, no two with one subject (so each certificate has at most one
carried candidate issuer and the search is a line, not a tree), and every key RSA of 2,048 to
8,192 bits with a public exponent of at most 65,537, or EC on P-256, P-384 or P-521: no key the
VTN's TLS refuses in a client (RSA under 2,048 bits, P-192, P-224: OpenSSL's security level 2 and
TLS 1.3's signature algorithms) passes, and no key makes its checks dear (a 2,046-bit exponent
costs ~60 times e = 65,537).

``tests/security/test_signature_chain.py`` compares each verdict with a real TLS handshake on the
same certificate; a refusal raises :class:`schemas.CertificateRefused` saying which rule failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Final, cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ._errors import CertificateRefused

__all__ = ["PathCheck", "Purpose", "check_carried"]

MAX_DEPTH: Final = 4  # intermediates between the end entity and an anchor
MAX_CARRIED: Final = MAX_DEPTH + 2  # the end entity, its intermediates and perhaps the anchor
_RSA_BITS: Final = (2048, 8192)
_RSA_MAX_EXPONENT: Final = 65537  # verifying costs ~17 squarings; a 3,000-bit exponent costs 200x
_CURVES: Final = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)  # TLS 1.3's ECDSA curves

Crls = Callable[[], Sequence[x509.CertificateRevocationList]]


class Purpose(StrEnum):
    """What the end entity must be certified for (its role in TLS)."""

    CLIENT = "clientAuth"  # a VEN, or a VTN when it pushes
    SERVER = "serverAuth"  # a VTN, or a VEN receiving pushes

    @property
    def oid(self) -> x509.ObjectIdentifier:
        match self:
            case Purpose.CLIENT:
                return ExtendedKeyUsageOID.CLIENT_AUTH
            case Purpose.SERVER:
                return ExtendedKeyUsageOID.SERVER_AUTH


class PathCheck:
    """Checks an end-entity certificate and the intermediates it came with against ``anchors``.

    ``crls`` is asked on every check (the VTN's follows its CRL file as its TLS does); None: no
    revocation check. Thread-safe: nothing is kept between checks.
    """

    __slots__ = ("_anchors", "_ca_policy", "_crls", "_ee_policy")

    def __init__(self, anchors: Sequence[x509.Certificate], *,
                 purpose: Purpose = Purpose.CLIENT, crls: Crls | None = None) -> None:
        if not anchors:
            raise ValueError("no trust anchor given")
        self._anchors = Store(list(anchors))
        self._crls = crls
        usage = _extended_usage(purpose)
        self._ca_policy = (
            ExtensionPolicy.permit_all()
            .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _is_ca)
            .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _signs_certificates)
            .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, usage))
        self._ee_policy = (
            ExtensionPolicy.permit_all()
            .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _signs)
            .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, usage))

    def path(self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
             now: datetime) -> tuple[x509.Certificate, ...]:
        """The validated path, ``leaf`` first and an anchor last; its revocation is checked too."""
        verifier = (
            PolicyBuilder().store(self._anchors).time(now).max_chain_depth(MAX_DEPTH)
            .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
            .build_client_verifier())
        try:
            chain = tuple(verifier.verify(leaf, list(intermediates)).chain)
        except VerificationError as exc:
            raise CertificateRefused(
                f"no trusted CA certifies {leaf.subject.rfc4514_string()!r} under the TLS "
                f"rules: {exc}") from None
        self.check_revocation(chain, now)
        return chain

    def check_revocation(self, path: Sequence[x509.Certificate], now: datetime) -> None:
        """``path`` (from :meth:`path`) against the CRLs as they are now."""
        crls = self._crls() if self._crls is not None else ()
        if not crls or len(path) < 2:
            return
        leaf, issuer = path[0], path[1]
        current = [crl for crl in crls if _issued_by(crl, issuer)]
        if not current:
            raise CertificateRefused(
                f"no CRL from {issuer.subject.rfc4514_string()!r}, the issuer of "
                f"{leaf.subject.rfc4514_string()!r}, among the configured ones")
        for crl in current:
            if not crl.last_update_utc <= now <= (crl.next_update_utc or now):
                raise CertificateRefused(
                    f"the CRL of {issuer.subject.rfc4514_string()!r} is not current at "
                    f"{now.isoformat()}")
            if crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None:
                raise CertificateRefused(f"{leaf.subject.rfc4514_string()!r} is revoked")


def check_carried(certificates: Sequence[x509.Certificate]) -> None:
    """Refuse a carried chain (end entity first) whose checking could cost more than a few
    public-key operations, before any of its keys or signatures is used."""
    if len(certificates) > MAX_CARRIED:
        raise CertificateRefused(
            f"{len(certificates)} certificates carried; at most {MAX_CARRIED} (the signer, "
            f"{MAX_DEPTH} intermediates and the root)")
    if len({certificate.subject for certificate in certificates}) != len(certificates):
        raise CertificateRefused("two carried certificates name the same subject")
    for certificate in certificates:
        _check_key(certificate)


def _check_key(certificate: x509.Certificate) -> None:
    key = certificate.public_key()
    match key:
        case rsa.RSAPublicKey():
            exponent = key.public_numbers().e
            if _RSA_BITS[0] <= key.key_size <= _RSA_BITS[1] and exponent <= _RSA_MAX_EXPONENT:
                return
            what = f"an RSA-{key.key_size} key with a {exponent.bit_length()}-bit public exponent"
        case ec.EllipticCurvePublicKey():
            if isinstance(key.curve, _CURVES):
                return
            what = f"an EC key on {key.curve.name}"
        case _:
            what = f"a {type(key).__name__}"
    raise CertificateRefused(
        f"{certificate.subject.rfc4514_string()!r} has {what}; accepted: RSA of "
        f"{_RSA_BITS[0]} to {_RSA_BITS[1]} bits with a public exponent of at most "
        f"{_RSA_MAX_EXPONENT}, or EC on P-256, P-384 or P-521")


def _issued_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = cast(CertificateIssuerPublicKeyTypes, issuer.public_key())  # it signed the path
    return crl.issuer == issuer.subject and crl.is_signature_valid(key)


# Extension validators: cryptography calls them with (policy, certificate, extension or None).

def _is_ca(_: Policy, __: x509.Certificate, constraints: x509.BasicConstraints) -> None:
    if not constraints.ca:
        raise ValueError("an issuer without BasicConstraints CA:TRUE")


def _signs_certificates(_: Policy, __: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("an issuer whose KeyUsage lacks keyCertSign")


def _signs(_: Policy, __: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not (usage.digital_signature or usage.key_agreement):
        raise ValueError("KeyUsage without digitalSignature or keyAgreement")


def _extended_usage(
    purpose: Purpose,
) -> Callable[[Policy, x509.Certificate, x509.ExtendedKeyUsage | None], None]:
    def check(_: Policy, __: x509.Certificate, usage: x509.ExtendedKeyUsage | None) -> None:
        if usage is not None and purpose.oid not in usage:
            raise ValueError(f"ExtendedKeyUsage without {purpose.value}")

    return check
