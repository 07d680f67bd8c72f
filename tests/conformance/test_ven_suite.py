"""The VEN-side suite's own parts: its passive rules, how it starts a VEN, its command line.

A rule is shown to flag the fault it names and to pass a clean request; a signed harness refuses
a replayed request and a stranger's signature; a VEN that never comes fails the first case saying
so; the command line runs crowdflex's VEN to a passing JUnit file, unsigned and signed.
"""

from __future__ import annotations

import shlex

import aiohttp
import pytest
from lxml import etree

from cbp.cli import build_parser, main
from cbp.conformance import (
    VEN_CASES,
    VEN_RULES,
    CommandVen,
    Exchange,
    HarnessVtn,
    HttpAddress,
    VenHarnessSettings,
    run_ven_cases,
    ven_catalogue,
)
from cbp.conformance.ven_rules import Heard, Said
from devpki import KeyType
from schemas import (
    Codec,
    CreatedEvent,
    CreatedReport,
    CreateReport,
    DistributeEvent,
    EiResponse,
    EventResponse,
    OptType,
    Poll,
    QueryRegistration,
    Signer,
    encode,
)
from schemas.tls import client_context

from .conftest import key_pki

VEN_ID = "AB:CD:EF:01:23:45:67:89:AB:CD"


def _findings(sent, *, service="OadrPoll", content_type="application/xml", said=None,
              body=None, schema_error=None, signature_error=None, xmpp=False):
    body = body if body is not None else encode(sent)
    exchange = Exchange(service=service, request=body, sent=sent, status=200,
                        content_type=content_type)
    heard = Heard(exchange=exchange, tree=etree.fromstring(body), schema_error=schema_error,
                  fingerprint=VEN_ID, signature_error=signature_error, xmpp=xmpp)
    said = said or Said(ven_id=VEN_ID)
    return {rule.rule_id: list(rule.check(heard, said)) for rule in VEN_RULES}


def _flagged(findings):
    return sorted(rule_id for rule_id, found in findings.items() if found)


def test_a_clean_poll_breaks_no_rule():
    assert _flagged(_findings(Poll(ven_id=VEN_ID))) == []


def test_each_rule_flags_its_fault():
    poll = Poll(ven_id=VEN_ID)
    assert _flagged(_findings(poll, schema_error="bad")) == ["VR01"]
    located = encode(poll).replace(b"<oadr:oadrPayload ",
                                   b'<oadr:oadrPayload xsi:schemaLocation="x y" ', 1)
    assert _flagged(_findings(poll, body=located)) == ["VR02"]
    assert _flagged(_findings(poll, content_type="text/plain")) == ["VR03"]
    assert _flagged(_findings(poll, service="EiEvent")) == ["VR04"]
    assert _flagged(_findings(Poll(ven_id="someone-else"))) == ["VR05"]
    assert _flagged(_findings(poll, signature_error="the payload is unsigned")) == ["VR07"]


def test_over_xmpp_the_http_framing_rules_find_nothing_and_a_poll_is_flagged():
    ack = CreatedReport(response=EiResponse(request_id="r-1"), ven_id=VEN_ID)
    said = Said(ven_id=VEN_ID, request_ids={CreateReport: {"r-1"}})
    assert _flagged(_findings(ack, service="EiEvent", content_type="text/plain",
                              said=said)) == ["VR03", "VR04"]
    assert _flagged(_findings(ack, service="XMPP IQ", content_type=None, said=said,
                              xmpp=True)) == []
    assert _flagged(_findings(Poll(ven_id=VEN_ID), service="XMPP IQ", content_type=None,
                              xmpp=True)) == ["VR08"]


def test_an_acknowledgement_must_echo_what_it_answers():
    said = Said(ven_id=VEN_ID)
    said.remember(DistributeEvent(request_id="dist-1", vtn_id="vtn"))
    answer = CreatedEvent(response=EiResponse(request_id=""), ven_id=VEN_ID, event_responses=(
        EventResponse(request_id="dist-1", event_id="e", modification_number=0,
                      opt_type=OptType.OPT_IN),))
    assert _flagged(_findings(answer, service="EiEvent", said=said)) == []
    stray = CreatedEvent(response=EiResponse(request_id="dist-2"), ven_id=VEN_ID,
                         event_responses=answer.event_responses)
    assert _flagged(_findings(stray, service="EiEvent", said=said)) == ["VR06"]
    unasked = CreatedReport(response=EiResponse(request_id="dist-1"), ven_id=VEN_ID)
    assert _flagged(_findings(unasked, service="EiReport", said=said)) == ["VR06"]


async def test_a_ven_that_never_comes_fails_saying_so(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    seen = tmp_path / "url"
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  wait_timeout_s=0.5)
    ven = CommandVen(f'echo "$CROWDFLEX_CONFORMANCE_VTN_URL" > {shlex.quote(str(seen))}')
    (first, *_) = await run_ven_cases(settings, ven, VEN_CASES[:1])
    assert not first.passed
    assert first.reason == "the VEN sent no oadrCreatePartyRegistration within 0.5 s"
    assert seen.read_text().strip().startswith("https://127.0.0.1:")
    assert seen.read_text().strip().endswith("/OpenADR2/Simple/2.0b")


def test_help_names_every_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["conformance", "ven", "--help"])
    text = capsys.readouterr().out
    for option in ("--cert", "--key", "--ca", "--ven", "--command", "--ven-cert", "--ven-key",
                   "--poll-freq", "--report-back", "--wait", "--junit", "--html", "--list",
                   "--only", "--tls-profile", "--host", "--port", "--push", "--signed",
                   "--transport", "--xmpp-host", "--xmpp-port", "--xmpp-domain",
                   "--xmpp-resource", "CROWDFLEX_CONFORMANCE_VTN_JID"):
        assert option in text


def test_list_with_push_prints_the_push_catalogue(capsys):
    assert main(["conformance", "ven", "--list", "--push"]) == 0
    listed = capsys.readouterr().out
    assert "E0_6010_TH_VTN" in listed and "E1_1010_TH_VTN" not in listed
    assert "N0_5030_TH_VTN" not in listed  # no poll case for a push VEN


def test_list_with_signed_adds_the_signature_cases_before_the_registration_ends(capsys):
    assert main(["conformance", "ven", "--list", "--signed"]) == 0
    listed = capsys.readouterr().out
    order = [listed.index(case_id) for case_id in (
        "R1_3030_TH_VTN", "G1_4030_TH_VTN", "G1_4031_TH_VTN", "G1_4033_TH_VTN", "N1_0040_TH_VTN")]
    assert order == sorted(order)
    assert "an event payload changed after signing is not acted on" in listed
    assert "VR07" in listed
    assert main(["conformance", "ven", "--list", "--signed", "--push"]) == 0
    assert "G0_9031_TH_VTN" in capsys.readouterr().out


async def test_a_signed_harness_refuses_a_replay_and_an_untrusted_signer(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    (tmp_path / "stranger").mkdir()
    stranger = key_pki(tmp_path / "stranger", KeyType.EC)  # a VEN certificate of another CA
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  signed=True)

    def signed_by(pair):
        return Codec(signer=Signer.from_files(pair.key, pair.cert)).encode(
            QueryRegistration(request_id="q-1"))

    body = signed_by(pki.ven)
    tls = client_context(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)
    async with HarnessVtn(settings) as vtn, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls)) as http:
        statuses = []
        address = vtn.address
        assert isinstance(address, HttpAddress)
        for sent in (body, body, signed_by(stranger.ven)):
            async with http.post(f"{address.url}/EiRegisterParty", data=sent,
                                 headers={"Content-Type": "application/xml"}) as got:
                statuses.append(got.status)
    assert statuses == [200, 400, 400]
    first, replayed, untrusted = vtn.history
    assert first.violations == ()
    assert [v.rule_id for v in replayed.violations] == ["VR07"]
    assert "nonce" in replayed.violations[0].detail
    assert [v.rule_id for v in untrusted.violations] == ["VR07"]
    assert "untrusted certificate" in untrusted.violations[0].detail


def test_cannot_run_without_its_files(tmp_path, capsys):
    assert main(["conformance", "ven"]) == 2
    assert "missing --cert, --key, --ca" in capsys.readouterr().err
    absent = tmp_path / "absent.pem"
    assert main(["conformance", "ven", "--cert", str(absent), "--key", str(absent),
                 "--ca", str(absent)]) == 2
    assert main(["conformance", "ven", "--only", "X9"]) == 2


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_the_command_line_runs_crowdflex_ven_to_a_passing_report(tmp_path, capsys, signed):
    pki = key_pki(tmp_path, KeyType.EC)
    junit, page = tmp_path / "ven.xml", tmp_path / "ven.html"
    code = main(["conformance", "ven", "--cert", str(pki.vtn.cert), "--key", str(pki.vtn.key),
                 "--ca", str(pki.ca_cert), "--ven", "crowdflex", "--ven-cert", str(pki.ven.cert),
                 "--ven-key", str(pki.ven.key), "--poll-freq", "1", "--report-back", "1",
                 "--wait", "20", "--junit", str(junit), "--html", str(page)]
                + ["--signed"] * signed)
    assert code == 0, capsys.readouterr().out
    suite = etree.parse(str(junit)).getroot()[0]
    cases = len(ven_catalogue(signed=signed))
    assert (suite.get("tests"), suite.get("failures")) == (str(cases), "0")
    assert "crowdflex conformance ven" in page.read_text()
