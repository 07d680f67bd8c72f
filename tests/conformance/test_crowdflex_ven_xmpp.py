"""The VEN-side suite over XMPP (OpenADR 2.0b profile 9.3) against crowdflex's own VEN, through
the real command: every case of the XMPP catalogue passes, with RSA and with ECC certificates,
the opt cases (P0) among them with crowdflex's VEN as its own operator, and the JUnit XML says
so. The harness judges what comes in IQs (a payload that does not decode
is answered with code 400 and breaks VR01; a registration naming another JID fails); the command
lists the XMPP catalogue, refuses signatures over XMPP, and hands a start command the server and
the harness's JID.

Real parts: a Prosody started by the test (:mod:`tests.xmpp.server`) that names each client by
its certificate's fingerprint; the harness VTN logging in to it with its certificate
(``crowdflex conformance ven --transport xmpp``, on a thread with its own event loop), and
crowdflex's VenClient on an XmppLink, all certificates of one key type from a CA minted here.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
from lxml import etree

from cbp.cli import main
from cbp.conformance import (
    ConformanceError,
    CrowdflexVen,
    HarnessVtn,
    PromptOperator,
    PromptVen,
    VenHarnessSettings,
    XmppAddress,
    run_ven_cases,
    select,
    ven_catalogue,
)
from cbp.conformance.ven_starters import address_environment
from devpki import KeyType
from schemas import Response, Service
from schemas.tls import client_context
from schemas.xmpp import localpart_of
from tests.kit.net import free_port
from ven.config import VenXmpp
from ven.xmpp import XmppLink
from vtn.settings import XmppSettings

from ..xmpp.server import XmppServer, require_prosody
from .conftest import KEY_TYPES, KeyPki, key_pki


@asynccontextmanager
async def prosody(pki: KeyPki) -> AsyncIterator[XmppServer]:
    require_prosody()
    server = XmppServer(cert=pki.xmpp_server.cert, key=pki.xmpp_server.key, ca=pki.ca_cert)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize(("key_type", "profile"), KEY_TYPES)
async def test_every_xmpp_case_passes_against_crowdflex(tmp_path, capsys, key_type, profile):
    pki = key_pki(tmp_path, key_type, profile)
    junit = tmp_path / "ven-xmpp.xml"
    async with prosody(pki) as server:
        code = await asyncio.to_thread(main, [
            "conformance", "ven", "--transport", "xmpp",
            "--xmpp-server", f"127.0.0.1:{server.port}", "--xmpp-domain", server.domain,
            "--cert", str(pki.vtn.cert), "--key", str(pki.vtn.key), "--ca", str(pki.ca_cert),
            "--tls-profile", profile.value, "--ven", "crowdflex",
            "--ven-cert", str(pki.ven.cert), "--ven-key", str(pki.ven.key),
            "--report-back", "1", "--wait", "20", "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 0, out
    suite = etree.parse(str(junit)).getroot()[0]
    catalogue = ven_catalogue(push=True)
    assert [c.get("name") for c in suite] == [c.case_id for c in catalogue]
    assert (suite.get("tests"), suite.get("failures")) == (str(len(catalogue)), "0")
    opts = [c.get("name") for c in suite if c.get("name").startswith("P0_")]
    assert opts == ["P0_7010_TH_VTN", "P0_7020_TH_VTN", "P0_7030_TH_VTN", "P0_7040_TH_VTN",
                    "P0_7050_TH_VTN"]
    registration = suite[0].findtext("system-out") or ""
    assert "XMPP IQ: oadrCreatePartyRegistration -> oadrCreatedPartyRegistration" \
        in registration
    jid = f"{localpart_of(pki.ven.fingerprint)}@localhost/ven"
    assert f"registered as venID {pki.ven.fingerprint} from {jid}" in registration


async def test_a_payload_that_does_not_decode_is_answered_400_and_breaks_vr01(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    broken = (b'<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07">'
              b"<oadr:oadrSignedObject/></oadr:oadrPayload>")
    async with prosody(pki) as server:
        settings = VenHarnessSettings(
            cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert, push=True,
            xmpp=XmppSettings(host="127.0.0.1", port=server.port, domain=server.domain))
        async with HarnessVtn(settings, PromptOperator()) as vtn:
            address = vtn.address
            assert isinstance(address, XmppAddress)
            link = XmppLink(host="127.0.0.1", port=server.port, domain=server.domain,
                            vtn_jid=address.jid, fingerprint=pki.ven.fingerprint,
                            ssl_context=client_context(cert=pki.ven.cert, key=pki.ven.key,
                                                       ca=pki.ca_cert))
            try:
                reply = await link.post(Service.REGISTER_PARTY, broken)
            finally:
                await link.close()
    assert address.jid == f"{localpart_of(pki.vtn.fingerprint)}@localhost/openadr"
    assert isinstance(reply, Response)
    assert reply.response.code == 400
    (heard,) = vtn.history
    assert (heard.service, heard.content_type, heard.sent) == ("XMPP IQ", None, None)
    assert [v.rule_id for v in heard.violations] == ["VR01"]


def test_list_over_xmpp_is_the_push_catalogue_with_the_xmpp_rule(capsys):
    assert main(["conformance", "ven", "--list", "--transport", "xmpp"]) == 0
    listed = capsys.readouterr().out
    assert all(case.case_id in listed for case in ven_catalogue(push=True))
    assert "N1_0010_TH_VTN" not in listed
    assert "P0_7050_TH_VTN" in listed and "or XMPP with its JID" in listed
    assert all(rule in listed for rule in ("VR08", "VR09", "VR10"))
    assert "VR10 over XMPP: no oadrPoll" in " ".join(listed.split())


def test_no_xmpp_server_exits_2_saying_where(tmp_path, capsys):
    pki = key_pki(tmp_path, KeyType.EC)
    port = free_port()
    assert main(["conformance", "ven", "--transport", "xmpp", "--xmpp-server", f"127.0.0.1:{port}",
                 "--cert", str(pki.vtn.cert), "--key", str(pki.vtn.key),
                 "--ca", str(pki.ca_cert), "--wait", "1"]) == 2
    assert f"cannot serve the harness VTN on XMPP server 127.0.0.1:{port}" \
        in capsys.readouterr().err


def test_an_xmpp_server_that_is_not_host_and_port_exits_2_saying_so(tmp_path, capsys):
    pki = key_pki(tmp_path, KeyType.EC)
    assert main(["conformance", "ven", "--transport", "xmpp", "--xmpp-server", "xmpp.example",
                 "--cert", str(pki.vtn.cert), "--key", str(pki.vtn.key),
                 "--ca", str(pki.ca_cert)]) == 2
    assert "--xmpp-server 'xmpp.example' is not HOST:PORT" in capsys.readouterr().err


def test_signatures_over_xmpp_are_refused_saying_why(tmp_path, capsys):
    pki = key_pki(tmp_path, KeyType.EC)
    assert main(["conformance", "ven", "--transport", "xmpp", "--signed",
                 "--cert", str(pki.vtn.cert), "--key", str(pki.vtn.key),
                 "--ca", str(pki.ca_cert)]) == 2
    assert "--signed is Simple HTTP only" in capsys.readouterr().err
    with pytest.raises(ConformanceError, match="over XMPP"):
        VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert, push=True,
                           signed=True, xmpp=XmppSettings())


async def test_a_start_command_and_a_person_are_given_the_server_and_the_jid():
    address = XmppAddress(host="xmpp.example", port=5223, domain="example",
                          jid="0123456789abcdef0123@example/openadr")
    assert address_environment(address) == {
        "CROWDFLEX_CONFORMANCE_XMPP_HOST": "xmpp.example",
        "CROWDFLEX_CONFORMANCE_XMPP_PORT": "5223",
        "CROWDFLEX_CONFORMANCE_XMPP_DOMAIN": "example",
        "CROWDFLEX_CONFORMANCE_VTN_JID": "0123456789abcdef0123@example/openadr"}
    said = io.StringIO()
    await PromptVen(output=said).start(address)
    assert "xmpp.example:5223 (domain example)" in said.getvalue()
    assert "0123456789abcdef0123@example/openadr" in said.getvalue()


ELSEWHERE = "00000000000000000000@elsewhere.example/ven"


@dataclass(frozen=True)
class _ElsewhereXmpp(VenXmpp):
    """An ``[xmpp]`` table whose link announces someone else's JID at registration."""

    def link(self, **options: Any) -> XmppLink:
        link = VenXmpp.link(self, **options)
        link.address = ELSEWHERE
        return link


class _ElsewhereVen(CrowdflexVen):
    def _config(self, address):
        config = super()._config(address)
        return replace(config, xmpp=_ElsewhereXmpp(**{
            name: getattr(config.xmpp, name)
            for name in ("vtn_jid", "host", "port", "domain", "resource")}))


async def test_a_registration_naming_another_jid_fails(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    async with prosody(pki) as server:
        settings = VenHarnessSettings(
            cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert, push=True, wait_timeout_s=20,
            xmpp=XmppSettings(host="127.0.0.1", port=server.port, domain=server.domain))
        ven = _ElsewhereVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)
        (result,) = await run_ven_cases(settings, ven, select(["N0_5010"],
                                                              ven_catalogue(push=True)),
                                        operator=ven)
    assert not result.passed
    sender = f"{localpart_of(pki.ven.fingerprint)}@localhost/ven"
    assert result.reason == f"oadrTransportAddress is {ELSEWHERE!r}, not its JID {sender!r}"
