"""The live suite against crowdflex's VTN over XMPP: every case of the push catalogue passes
through a real Prosody (started here, as tests/xmpp does), with RSA and with ECC certificates,
the operator being the admin API; the JUnit XML names every case and no failure, and the
command (``crowdflex conformance vtn --transport xmpp``) runs the same way.

Real parts: Prosody on a free loopback port with SASL EXTERNAL on the run's certificates, the
VTN serving HTTP and XMPP on a SQLite file in tmp_path, the harness VEN on crowdflex's own
XmppLink.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from lxml import etree

from cbp.cli import main
from cbp.conformance import AdminApiOperator, HarnessSettings, junit_xml, run_cases, vtn_catalogue
from cbp.conformance.vtn_address import XmppAddress
from devpki import KeyType
from schemas import TransportName
from schemas.identity import TlsProfile
from tests.xmpp.server import XmppServer, require_prosody
from vtn.app import XMPP
from vtn.settings import XmppSettings

from .conftest import ADMIN_TOKEN, KEY_TYPES, KeyPki, ServedVtn, crowdflex_vtn, key_pki

#: what a VTN sends a VEN on its own: over XMPP every one arrives as an IQ set
_VTN_INITIATED = {"oadrDistributeEvent", "oadrRegisterReport", "oadrCreateReport",
                  "oadrCancelReport", "oadrCancelPartyRegistration", "oadrRequestReregistration"}


@asynccontextmanager
async def _served_over_xmpp(pki: KeyPki, directory: Path
                            ) -> AsyncIterator[tuple[ServedVtn, XmppAddress]]:
    """Prosody with ``pki``'s server certificate, and crowdflex's VTN serving through it."""
    require_prosody()
    server = XmppServer(cert=pki.xmpp_server.cert, key=pki.xmpp_server.key, ca=pki.ca_cert)
    await server.start()
    try:
        xmpp = XmppSettings(host="127.0.0.1", port=server.port, domain=server.domain,
                            connect_timeout_s=30.0)
        async with crowdflex_vtn(pki, directory, xmpp=xmpp) as served:
            yield served, XmppAddress(host="127.0.0.1", port=server.port, domain=server.domain,
                                      jid=served.vtn.app[XMPP].jid)
    finally:
        await server.stop()


@pytest.mark.parametrize(("key_type", "profile"), KEY_TYPES)
async def test_every_case_passes_against_crowdflex_over_xmpp(tmp_path, key_type, profile):
    pki = key_pki(tmp_path, key_type, profile)
    async with _served_over_xmpp(pki, tmp_path) as (served, target):
        settings = HarnessSettings(xmpp=target, push=True, cert=pki.ven.cert, key=pki.ven.key,
                                   ca=pki.ca_cert, tls_profile=profile, wait_timeout_s=20,
                                   poll_interval_s=0.2)
        results = await run_cases(settings, AdminApiOperator(served.admin_url, ADMIN_TOKEN))
    assert [r.case.case_id for r in results] == [c.case_id for c in vtn_catalogue(push=True)]
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert failures == {}
    exchanges = [e for r in results for e in r.exchanges]
    assert {e.transport for e in exchanges} == {TransportName.XMPP}
    assert {e.received_name for e in exchanges if e.request == b""} == _VTN_INITIATED
    reasons = {r.case.case_id: r.reason for r in results}
    assert "service discovery announces http://openadr.org/openadr2 and 4 service items" in (
        reasons["N0_5010_TH_VEN"])
    # G0_9020 over XMPP: the session without a client certificate never got one
    assert "the connection was refused" in reasons["G0_9020_TH_VEN"]
    assert "SASL EXTERNAL refused" in reasons["G0_9020_TH_VEN"]
    suite = etree.fromstring(junit_xml(results))[0]
    assert (suite.get("tests"), suite.get("failures")) == (str(len(results)), "0")
    assert [c.get("name") for c in suite] == [r.case.case_id for r in results]


async def test_the_command_runs_over_xmpp_and_writes_junit(tmp_path, monkeypatch):
    monkeypatch.setenv("CF_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    pki = key_pki(tmp_path, KeyType.EC, TlsProfile.TLS13)
    junit = tmp_path / "junit.xml"
    only = ("N0_5010_TH_VEN", "N0_5020_TH_VEN", "E0_6010")
    async with _served_over_xmpp(pki, tmp_path) as (served, target):
        code = await asyncio.to_thread(main, [
            "conformance", "vtn", "--transport", "xmpp", "--vtn-jid", target.jid,
            "--xmpp-server", f"{target.host}:{target.port}", "--xmpp-domain", target.domain,
            "--cert", str(pki.ven.cert), "--key", str(pki.ven.key), "--ca", str(pki.ca_cert),
            "--operator", "crowdflex-admin", "--admin-url", served.admin_url,
            "--admin-token-env", "CF_TEST_ADMIN_TOKEN", "--only", *only, "--junit", str(junit)])
    assert code == 0
    suite = etree.parse(str(junit)).getroot()[0]
    assert [c.get("name") for c in suite] == [
        c.case_id for c in vtn_catalogue(push=True) if c.case_id.startswith(only)]
    assert suite.get("failures") == "0"
    assert "EiRegisterParty: oadrCreatePartyRegistration -> oadrCreatedPartyRegistration " \
        "(IQ result)" in suite[1].findtext("system-out")
