"""The live suite against crowdflex's own VTN: every case passes, with RSA and with ECC.

Real parts: mutual TLS on 127.0.0.1 port 0 (the certificates of one key type, minted here), a
SQLite file in tmp_path, and the admin API as the operator.
"""

from __future__ import annotations

import pytest

from cbp.conformance import VTN_CASES, AdminApiOperator, HarnessSettings, run_cases
from devpki import KeyType
from schemas.identity import TlsProfile

from .conftest import ADMIN_TOKEN, crowdflex_vtn, key_pki


@pytest.mark.parametrize(("key_type", "profile"), [
    (KeyType.EC, TlsProfile.TLS13),
    (KeyType.RSA, TlsProfile.OPENADR_TLS12),
])
async def test_every_case_passes_against_crowdflex(tmp_path, key_type, profile):
    pki = key_pki(tmp_path, key_type, profile)
    async with crowdflex_vtn(pki, tmp_path) as served:
        settings = HarnessSettings(url=served.vtn.url, cert=pki.ven.cert, key=pki.ven.key,
                                   ca=pki.ca_cert, tls_profile=profile, wait_timeout_s=20,
                                   poll_interval_s=0.2)
        results = await run_cases(settings, AdminApiOperator(served.admin_url, ADMIN_TOKEN))
    assert [r.case.case_id for r in results] == [c.case_id for c in VTN_CASES]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
    assert all(r.exchanges for r in results)
