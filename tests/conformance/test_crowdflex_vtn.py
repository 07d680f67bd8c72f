"""The live suite against crowdflex's own VTN: every case passes, with RSA and with ECC.

Real parts: mutual TLS on 127.0.0.1 port 0 (the certificates of one key type, minted here), a
SQLite file in tmp_path, and the admin API as the operator.
"""

from __future__ import annotations

import pytest

from cbp.conformance import (
    VTN_CASES,
    VTN_PUSH_CASES,
    AdminApiOperator,
    HarnessSettings,
    run_cases,
    vtn_catalogue,
)
from cbp.pki import KeyType
from schemas.identity import TlsProfile
from vtn.signing import SignatureSettings

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


@pytest.mark.parametrize(("key_type", "profile"), [
    (KeyType.EC, TlsProfile.TLS13),
    (KeyType.RSA, TlsProfile.OPENADR_TLS12),
])
async def test_every_push_case_passes_against_crowdflex(tmp_path, key_type, profile):
    pki = key_pki(tmp_path, key_type, profile)
    async with crowdflex_vtn(pki, tmp_path) as served:
        settings = HarnessSettings(url=served.vtn.url, cert=pki.ven.cert, key=pki.ven.key,
                                   ca=pki.ca_cert, tls_profile=profile, wait_timeout_s=20,
                                   poll_interval_s=0.2, push=True)
        results = await run_cases(settings, AdminApiOperator(served.admin_url, ADMIN_TOKEN))
    assert [r.case.case_id for r in results] == [c.case_id for c in VTN_PUSH_CASES]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
    pushed = {e.received_name for r in results for e in r.exchanges if e.request == b""}
    assert {"oadrDistributeEvent", "oadrCreateReport", "oadrCancelReport",
            "oadrCancelPartyRegistration", "oadrRequestReregistration"} <= pushed
    polled = [e.received_name for r in results for e in r.exchanges if e.service == "OadrPoll"
              and e.received is not None and e.received_name != "oadrResponse"]
    assert polled == []  # nothing reached the push VEN by poll


@pytest.mark.parametrize("push", [False, True])
async def test_every_signed_case_passes_against_crowdflex(tmp_path, push):
    pki = key_pki(tmp_path, KeyType.EC)
    signatures = SignatureSettings(trusted=(pki.ca_cert,), require=True, sign_replies=True)
    async with crowdflex_vtn(pki, tmp_path, signatures=signatures) as served:
        settings = HarnessSettings(url=served.vtn.url, cert=pki.ven.cert, key=pki.ven.key,
                                   ca=pki.ca_cert, wait_timeout_s=20, poll_interval_s=0.2,
                                   push=push, signed=True)
        results = await run_cases(settings, AdminApiOperator(served.admin_url, ADMIN_TOKEN))
    assert [r.case.case_id for r in results] == [
        c.case_id for c in vtn_catalogue(push=push, signed=True)]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
