"""The VEN-side suite against crowdflex's own VEN client: every case passes, pull and push,
unsigned and signed (both sides signing and requiring signatures), with RSA and ECC. The harness
can fail a VEN: one that does not sign fails rule VR07, one that does not verify what it gets
fails the tampered and unsigned cases.

Real parts: the harness VTN on 127.0.0.1 port 0 over mutual TLS (the certificates of one key
type, minted here), crowdflex's VenClient polling it, or taking its pushes on a receiver of its
own.
"""

from __future__ import annotations

import pytest

from cbp.conformance import (
    CrowdflexVen,
    VenHarnessSettings,
    run_ven_cases,
    select,
    ven_catalogue,
)
from devpki import KeyType
from schemas import Codec, Signer

from .conftest import KEY_TYPES, key_pki


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("push", [False, True], ids=["pull", "push"])
@pytest.mark.parametrize(("key_type", "profile"), KEY_TYPES)
async def test_every_case_passes_against_crowdflex(tmp_path, key_type, profile, push, signed):
    pki = key_pki(tmp_path, key_type, profile)
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  tls_profile=profile, poll_freq_s=1, report_back_s=1,
                                  wait_timeout_s=20, push=push, signed=signed)
    ven = CrowdflexVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert, tls_profile=profile,
                       push=push, signed=signed)
    results = await run_ven_cases(settings, ven, operator=ven)
    catalogue = ven_catalogue(push=push, signed=signed)
    assert [r.case.case_id for r in results] == [c.case_id for c in catalogue]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
    assert all(r.exchanges for r in results)


async def test_a_ven_that_does_not_sign_fails_a_signed_run(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  poll_freq_s=1, wait_timeout_s=2, signed=True)
    ven = CrowdflexVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)
    (first,) = await run_ven_cases(settings, ven, ven_catalogue(signed=True)[:1], operator=ven)
    assert not first.passed
    assert "rule VR07: request is refused for its signature: the payload is unsigned" \
        in first.reason
    assert first.exchanges[0].sent_name == "(raw body)"
    assert first.exchanges[0].status == 400


class _VerifiesNothingVen(CrowdflexVen):
    """crowdflex's VEN signing what it sends but verifying nothing it gets."""

    def _codec(self, address):
        return Codec(signer=Signer.from_files(self.key, self.cert))


async def test_a_ven_that_does_not_verify_fails_the_signature_cases(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  poll_freq_s=1, wait_timeout_s=20, signed=True)
    ven = _VerifiesNothingVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)
    results = await run_ven_cases(settings, ven, select(["N1_0010", "G1"],
                                                        ven_catalogue(signed=True)), operator=ven)
    assert {r.case.case_id: r.passed for r in results} == {
        "N1_0010_TH_VTN": True, "G1_4030_TH_VTN": True, "G1_4031_TH_VTN": False,
        "G1_4033_TH_VTN": False}
    tampered, unsigned = (r.reason for r in results[2:])
    assert tampered.startswith("it acted on the tampered payload: oadrCreatedEvent for 'cf-")
    assert unsigned.startswith("it acted on the unsigned payload: oadrCreatedEvent for 'cf-")
