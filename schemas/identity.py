"""Peer identity in OpenADR 2.0b: certificate fingerprints, and the transport profile as plain data.

Owns the one fingerprint function every stack must agree on, so a VTN (which reads it from the TLS
client certificate), a VEN (which pins its VTN) and an operator (who registers a device) all compute
the same text for the same certificate.

OpenADR 2.0b Profile Specification, security section: a certificate's fingerprint is the
SHA-256 digest of its DER encoding, truncated to the last 80 bits and written as ten colon-separated
hexadecimal octets, e.g. ``5B:B6:4F:...:3A``. The VEN's certificate fingerprint may serve as its
venID. openleadr (the independent peer we test against) writes the octets in upper case; we do too,
so fingerprints compare equal as strings across stacks. :func:`normalize_fingerprint` accepts either
case from a human.

Invariants: pure, no I/O, no ``ssl`` import; a fingerprint returned here always matches
:data:`FINGERPRINT_PATTERN`. :class:`TlsProfile` only names the TLS versions and suites a node may
use; ``vtn.tls`` and ``ven.tls`` apply it to their ``ssl.SSLContext``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sys
from enum import StrEnum
from typing import Final

__all__ = [
    "FINGERPRINT_PATTERN",
    "OPENADR_TLS12_CIPHERS",
    "TlsProfile",
    "certificate_fingerprint",
    "fingerprint_from_pem",
    "normalize_fingerprint",
]

# Ten octets = 80 bits: the tail of the SHA-256 digest (profile, security section).
_FINGERPRINT_OCTETS: Final = 10

FINGERPRINT_PATTERN: Final = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){9}")

# The two cipher suites OpenADR 2.0b requires for TLS 1.2 (profile, security section), in
# OpenSSL names: TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 and TLS_RSA_WITH_AES_128_CBC_SHA256.
OPENADR_TLS12_CIPHERS: Final = "ECDHE-ECDSA-AES128-SHA256:AES128-SHA256"

_PEM_CERTIFICATE: Final = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)


class TlsProfile(StrEnum):
    """Which TLS versions and suites a node offers; the value is the configuration spelling."""

    TLS13 = "tls1.3"
    """TLS 1.3 only (the default): modern suites, forward secrecy, no CBC."""
    OPENADR_TLS12 = "openadr-tls1.2"
    """Exactly what 2.0b certification expects: TLS 1.2 with only the two OpenADR suites."""
    OPENADR_TLS12_OR_TLS13 = "openadr-tls1.2+tls1.3"
    """Mixed fleets: TLS 1.3, or TLS 1.2 restricted to the two OpenADR suites."""

    @property
    def allows_tls12(self) -> bool:
        return self is not TlsProfile.TLS13

    @property
    def allows_tls13(self) -> bool:
        return self is not TlsProfile.OPENADR_TLS12


def certificate_fingerprint(der: bytes) -> str:
    """The OpenADR fingerprint of a DER certificate: last 80 bits of SHA-256 as ``AA:BB:..``,
    interned: a server keeps a connected VEN's fingerprint in several tables (its connection,
    its identity, its budgets, its registration), and they then share one string."""
    tail = hashlib.sha256(der).digest()[-_FINGERPRINT_OCTETS:]
    return sys.intern(tail.hex(":").upper())


def fingerprint_from_pem(pem: bytes | str) -> str:
    """The OpenADR fingerprint of the first certificate in a PEM text (a chain file's leaf).

    Raises ``ValueError`` when the text holds no well-formed ``CERTIFICATE`` block.
    """
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    match = _PEM_CERTIFICATE.search(data)
    if match is None:
        raise ValueError("no PEM CERTIFICATE block found")
    try:
        der = base64.b64decode(b"".join(match["body"].split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"PEM CERTIFICATE block is not valid base64: {exc}") from exc
    return certificate_fingerprint(der)


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as written by a human (any case, surrounding blanks) in canonical form.

    Raises ``ValueError`` for anything that is not ten colon-separated hexadecimal octets.
    """
    candidate = text.strip().upper()
    if FINGERPRINT_PATTERN.fullmatch(candidate) is None:
        raise ValueError(f"not an OpenADR certificate fingerprint: {text!r}")
    return candidate
