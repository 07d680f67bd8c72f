"""vtn.certpath: the checks the VTN makes of a certificate outside a handshake, at an injected
clock, against the session PKI."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devpki import CertificateAuthority
from tests.kit.pki import Pki
from vtn.certpath import CertificatePath, CertificateRejected
from vtn.revocation import load_crls


def _now() -> datetime:
    """The clock these checks run at: now, read when asked (a CRL made during the test was
    issued after the test module was imported, so a time fixed at import would predate it)."""
    return datetime.now(UTC)


def _crl(pki: Pki, tmp_path: Path, *revoked: bytes) -> Path:
    path = tmp_path / "crl.pem"
    path.write_bytes(pki.authority.revocation_list(
        tuple(x509.load_pem_x509_certificate(pem) for pem in revoked)))
    return path


def test_a_valid_ven_certificate_gives_its_fingerprint_and_how_long_that_holds(
        pki: Pki, tmp_path: Path) -> None:
    """Until the leaf expires; with a CRL, until its next update if that comes sooner."""
    expiry = x509.load_pem_x509_certificate(pki.ven.cert_pem).not_valid_after_utc
    assert CertificatePath(ca=pki.ca_cert, clock=_now).verify(pki.ven.cert_pem) == \
        (pki.ven.fingerprint, expiry)
    crl = _crl(pki, tmp_path)
    (listed,) = load_crls(crl.read_bytes())
    assert listed.next_update_utc is not None and listed.next_update_utc < expiry
    paths = CertificatePath(ca=pki.ca_cert, crl=crl, clock=_now)
    assert paths.verify(pki.ven.cert_pem) == (pki.ven.fingerprint, listed.next_update_utc)


def test_validity_is_judged_at_the_injected_clock(pki: Pki) -> None:
    expiry = x509.load_pem_x509_certificate(pki.ven.cert_pem).not_valid_after_utc
    later = CertificatePath(ca=pki.ca_cert, clock=lambda: expiry + timedelta(seconds=1))
    with pytest.raises(CertificateRejected, match="path refused"):
        later.verify(pki.ven.cert_pem)


def test_without_a_current_crl_of_the_issuer_the_certificate_is_refused(
        pki: Pki, tmp_path: Path) -> None:
    """As VERIFY_CRL_CHECK_LEAF in the handshake: a CRL from another issuer, or one past its
    next update, is no CRL at all."""
    other = tmp_path / "other.pem"
    other.write_bytes(CertificateAuthority.create(common_name="other CA").revocation_list(()))
    with pytest.raises(CertificateRejected, match="no CRL from 'CN=crowdflex test CA"):
        CertificatePath(ca=pki.ca_cert, crl=other, clock=_now).verify(pki.ven.cert_pem)
    crl = _crl(pki, tmp_path)
    (listed,) = load_crls(crl.read_bytes())
    assert listed.next_update_utc is not None
    stale = CertificatePath(ca=pki.ca_cert, crl=crl,
                            clock=lambda: listed.next_update_utc + timedelta(seconds=1))
    with pytest.raises(CertificateRejected, match=r"the CRL of .CN=crowdflex test CA.*is not "
                                                  "current"):
        stale.verify(pki.ven.cert_pem)


def test_a_changed_crl_file_is_taken_into_use_and_a_broken_one_is_not(
        pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    crl = _crl(pki, tmp_path)
    paths = CertificatePath(ca=pki.ca_cert, crl=crl, clock=_now)
    der = x509.load_pem_x509_certificate(pki.ven.cert_pem).public_bytes(
        serialization.Encoding.DER)
    assert not paths.refresh() and paths.generation == 0 and not paths.revoked(der)
    _crl(pki, tmp_path, pki.ven.cert_pem)
    assert paths.refresh() and paths.generation == 1 and paths.revoked(der)
    with pytest.raises(CertificateRejected, match="revoked"):
        paths.verify(pki.ven.cert_pem)
    crl.write_bytes(b"-----BEGIN X509 CRL-----\nbroken\n-----END X509 CRL-----\n")
    with caplog.at_level(logging.ERROR, logger="vtn.revocation"):
        assert not paths.refresh()
    assert paths.generation == 1 and paths.revoked(der)  # the last good list stays
    assert any("could not be loaded" in r.getMessage() for r in caplog.records)
