"""The live suite against crowdflex's own VTN: every case passes in every mode: pull and push,
unsigned and signed (the VTN requiring signatures and signing its replies), RSA and ECC.

Real parts: mutual TLS on 127.0.0.1 port 0 (the certificates of one key type, minted here), a
SQLite file in tmp_path, and the admin API as the operator.
"""

from __future__ import annotations

import pytest

from cbp.conformance import AdminApiOperator, HarnessSettings, run_cases, vtn_catalogue
from vtn.signing import SignatureSettings

from .conftest import ADMIN_TOKEN, KEY_TYPES, crowdflex_vtn, key_pki

#: what a VTN sends a VEN on its own (all of them must reach a push VEN by push)
_VTN_INITIATED = {"oadrDistributeEvent", "oadrRegisterReport", "oadrCreateReport",
                  "oadrCancelReport", "oadrCancelPartyRegistration", "oadrRequestReregistration"}


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("push", [False, True], ids=["pull", "push"])
@pytest.mark.parametrize(("key_type", "profile"), KEY_TYPES)
async def test_every_case_passes_against_crowdflex(tmp_path, key_type, profile, push, signed):
    pki = key_pki(tmp_path, key_type, profile)
    signatures = SignatureSettings(trusted=(pki.ca_cert,), require=True, sign_replies=True) \
        if signed else SignatureSettings()
    async with crowdflex_vtn(pki, tmp_path, signatures=signatures) as served:
        settings = HarnessSettings(url=served.vtn.url, cert=pki.ven.cert, key=pki.ven.key,
                                   ca=pki.ca_cert, tls_profile=profile, wait_timeout_s=20,
                                   poll_interval_s=0.2, push=push, signed=signed)
        results = await run_cases(settings, AdminApiOperator(served.admin_url, ADMIN_TOKEN))
    assert [r.case.case_id for r in results] == [
        c.case_id for c in vtn_catalogue(push=push, signed=signed)]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
    if not push:  # a push may land during the case before the one that reads it
        assert [r.case.case_id for r in results if not r.exchanges] == []
    exchanges = [e for r in results for e in r.exchanges]
    pushed = {e.received_name for e in exchanges if e.request == b""}
    polled = {e.received_name for e in exchanges if e.service == "OadrPoll"
              and e.received is not None} - {"oadrResponse"}
    assert (pushed, polled) == ((_VTN_INITIATED, set()) if push else (set(), _VTN_INITIATED))
