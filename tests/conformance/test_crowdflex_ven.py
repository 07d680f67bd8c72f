"""The VEN-side suite against crowdflex's own VEN client: every case passes, pull and push, with
RSA and ECC.

Real parts: the harness VTN on 127.0.0.1 port 0 over mutual TLS (the certificates of one key
type, minted here), crowdflex's VenClient polling it, or taking its pushes on a receiver of its
own.
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

from .conftest import KEY_TYPES, key_pki


@pytest.mark.parametrize("push", [False, True], ids=["pull", "push"])
@pytest.mark.parametrize(("key_type", "profile"), KEY_TYPES)
async def test_every_case_passes_against_crowdflex(tmp_path, key_type, profile, push):
    pki = key_pki(tmp_path, key_type, profile)
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  tls_profile=profile, poll_freq_s=1, report_back_s=1,
                                  wait_timeout_s=20, push=push)
    ven = CrowdflexVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert, tls_profile=profile,
                       push=push)
    results = await run_ven_cases(settings, ven)
    catalogue = VEN_PUSH_CASES if push else VEN_CASES
    assert [r.case.case_id for r in results] == [c.case_id for c in catalogue]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
    assert all(r.exchanges for r in results)
