"""The VEN-side suite against crowdflex's own VEN client: every case passes, with RSA and ECC.

Real parts: the harness VTN on 127.0.0.1 port 0 over mutual TLS (the certificates of one key
type, minted here), crowdflex's VenClient polling it.
"""

from __future__ import annotations

import pytest

from cbp.conformance import (
    VEN_CASES,
    VEN_PUSH_CASES,
    CrowdflexVen,
    VenHarnessSettings,
    run_ven_cases,
)
from cbp.pki import KeyType
from schemas.identity import TlsProfile

from .conftest import key_pki


@pytest.mark.parametrize(("key_type", "profile"), [
    (KeyType.EC, TlsProfile.TLS13),
    (KeyType.RSA, TlsProfile.OPENADR_TLS12),
])
async def test_every_case_passes_against_crowdflex(tmp_path, key_type, profile):
    pki = key_pki(tmp_path, key_type, profile)
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  tls_profile=profile, poll_freq_s=1, report_back_s=1,
                                  wait_timeout_s=20)
    ven = CrowdflexVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert, tls_profile=profile)
    results = await run_ven_cases(settings, ven)
    assert [r.case.case_id for r in results] == [c.case_id for c in VEN_CASES]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
    assert all(r.exchanges for r in results)


@pytest.mark.parametrize(("key_type", "profile"), [
    (KeyType.EC, TlsProfile.TLS13),
    (KeyType.RSA, TlsProfile.OPENADR_TLS12),
])
async def test_every_push_case_passes_against_crowdflex(tmp_path, key_type, profile):
    pki = key_pki(tmp_path, key_type, profile)
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  tls_profile=profile, report_back_s=1, wait_timeout_s=20,
                                  push=True)
    ven = CrowdflexVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert, tls_profile=profile,
                       push=True)
    results = await run_ven_cases(settings, ven)
    assert [r.case.case_id for r in results] == [c.case_id for c in VEN_PUSH_CASES]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
    assert all(r.exchanges for r in results)
