"""OpenADR certificate fingerprints agree with openleadr's, byte for byte and case for case."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openleadr.utils import certificate_fingerprint_from_der as openleadr_fingerprint_from_der

from schemas.identity import (
    FINGERPRINT_PATTERN,
    TlsProfile,
    certificate_fingerprint,
    fingerprint_from_pem,
    normalize_fingerprint,
)


def test_fingerprint_is_the_last_80_bits_of_sha256() -> None:
    # SHA-256("") = e3b0c442...649b934ca495991b7852b855: the last 20 hex digits, in pairs.
    assert certificate_fingerprint(b"") == "93:4C:A4:95:99:1B:78:52:B8:55"
    digest = hashlib.sha256(b"crowdflex").hexdigest().upper()
    assert certificate_fingerprint(b"crowdflex").replace(":", "") == digest[-20:]


@given(st.binary(max_size=2048))
def test_fingerprint_of_any_bytes_matches_openleadr(der: bytes) -> None:
    ours = certificate_fingerprint(der)
    assert ours == openleadr_fingerprint_from_der(der)
    assert FINGERPRINT_PATTERN.fullmatch(ours)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----\n",
    ],
)
def test_fingerprint_from_pem_refuses_non_certificates(text: str) -> None:
    with pytest.raises(ValueError):
        fingerprint_from_pem(text)


def test_normalize_fingerprint_accepts_any_case_and_refuses_other_shapes() -> None:
    canonical = "93:4C:A4:95:99:1B:78:52:B8:55"
    assert normalize_fingerprint(" 93:4c:a4:95:99:1b:78:52:b8:55\n") == canonical
    too_short, not_hex = "93:4C:A4:95:99:1B:78:52:B8", "93:4C:A4:95:99:1B:78:52:B8:5G"
    for bad in ("934CA495991B7852B855", too_short, not_hex):
        with pytest.raises(ValueError):
            normalize_fingerprint(bad)


def test_tls_profiles_name_their_versions() -> None:
    assert (TlsProfile.TLS13.allows_tls12, TlsProfile.TLS13.allows_tls13) == (False, True)
    assert (TlsProfile.OPENADR_TLS12.allows_tls12, TlsProfile.OPENADR_TLS12.allows_tls13) == (
        True,
        False,
    )
    mixed = TlsProfile("openadr-tls1.2+tls1.3")
    assert (mixed.allows_tls12, mixed.allows_tls13) == (True, True)
