"""OpenADR certificate fingerprints agree with openleadr's, byte for byte and case for case."""

from __future__ import annotations

from openleadr.utils import certificate_fingerprint as openleadr_fingerprint

from schemas.identity import (
    fingerprint_from_pem,
)
from tests.kit.pki import Pki


def test_fingerprint_of_real_certificates_matches_openleadr(pki: Pki) -> None:
    for files in (pki.vtn, *pki.vens, pki.untrusted_ven):
        pem_text = files.cert.read_text()
        assert fingerprint_from_pem(pem_text) == openleadr_fingerprint(pem_text)
        assert fingerprint_from_pem(files.cert_pem) == files.fingerprint
    assert fingerprint_from_pem(pki.ca_cert.read_bytes()) == pki.ca_fingerprint


def test_fingerprint_from_pem_takes_the_leaf_of_a_chain(pki: Pki) -> None:
    leaf = pki.vtn.cert_pem.replace(b"\n", b"\r\n")
    chain = b"subject=CN=vtn\r\n" + leaf + pki.ca_cert.read_bytes()
    assert fingerprint_from_pem(chain) == pki.vtn.fingerprint
