"""``vtn.revocation.CrlFile``: the CRLs the VTN's signature checks use, following the file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography import x509

from tests.kit.pki import Pki
from vtn.revocation import CrlFile


def _serials(crls: tuple[x509.CertificateRevocationList, ...]) -> set[int]:
    return {entry.serial_number for crl in crls for entry in crl}


def test_follows_the_file_and_keeps_the_last_good_list(
        pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "crl.pem"
    path.write_bytes(pki.authority.revocation_list(()))
    crls = CrlFile(path)
    assert crls() and _serials(crls()) == set()

    revoked = x509.load_pem_x509_certificate(pki.vens[1].cert_pem)
    path.write_bytes(pki.authority.revocation_list((revoked,)))
    assert _serials(crls()) == {revoked.serial_number}

    path.write_bytes(b"not a CRL")
    with caplog.at_level(logging.ERROR, logger="vtn.revocation"):
        assert _serials(crls()) == {revoked.serial_number}
        assert _serials(crls()) == {revoked.serial_number}  # same version: not read again
    assert len([r for r in caplog.records if "could not be loaded" in r.getMessage()]) == 1

    path.unlink()
    assert _serials(crls()) == {revoked.serial_number}


def test_a_crl_unreadable_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "crl.pem"
    path.write_bytes(b"not a CRL")
    with pytest.raises(ValueError, match="no PEM CRL"):
        CrlFile(path)
