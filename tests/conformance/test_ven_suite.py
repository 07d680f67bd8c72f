"""The VEN-side suite's own parts: its passive rules, how it starts a VEN, its operator, its
command line.

A rule is shown to flag the fault it names and to pass a clean request; a signed harness refuses
a replayed request and a stranger's signature; a VEN that never comes fails the first case saying
so; an operator that cannot make the VEN opt fails the opt case saying why (and gets the step as
the JSON the guide shows); a VEN that opts other than asked fails the opt cases, one that registers
again after a refused opt fails P1_2050; the command line runs crowdflex's VEN to a passing
JUnit file, unsigned and signed, and refuses an operator it cannot build.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from cbp.cli import build_parser, main
from cbp.cli._conformance_ven import _operator
from cbp.conformance import (
    VEN_CASES,
    VEN_RULES,
    CommandOperator,
    CommandVen,
    CrowdflexVen,
    Exchange,
    HarnessVtn,
    HttpAddress,
    PromptOperator,
    PromptVen,
    Step,
    StepKind,
    VenHarnessSettings,
    run_ven_cases,
    select,
    ven_catalogue,
)
from cbp.conformance._model import MAX_BODY_BYTES, CaseFailed
from cbp.conformance.ven_rules import Heard, Said
from devpki import KeyType
from schemas import (
    SERVICE_PREFIX,
    Availability,
    CancelOpt,
    Codec,
    CreatedEvent,
    CreatedOpt,
    CreatedReport,
    CreateOpt,
    CreatePartyRegistration,
    CreateReport,
    DistributeEvent,
    EiResponse,
    EventResponse,
    OptReason,
    OptType,
    Poll,
    QualifiedEventId,
    QueryRegistration,
    Signer,
    encode,
)
from schemas.tls import client_context, server_context

from .conftest import endless_xml, key_pki

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
                              xmpp=True)) == ["VR10"]


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


def _opt(**fields):
    values = {"opt_id": "opt-1", "opt_type": OptType.OPT_OUT, "opt_reason": OptReason.X_SCHEDULE,
              "ven_id": VEN_ID, "created_date_time": datetime(2030, 1, 1, tzinfo=UTC),
              "request_id": "r-1"}
    return CreateOpt(**(values | fields))


def test_an_opt_must_say_what_it_is_for():
    window = Availability(dtstart=datetime(2030, 1, 2, tzinfo=UTC), duration=timedelta(hours=1))
    assert _flagged(_findings(_opt(vavailability=(window,)), service="EiOpt")) == []
    assert _flagged(_findings(_opt(qualified_event_id=QualifiedEventId(
        event_id="e-1", modification_number=0)), service="EiOpt")) == []
    assert _flagged(_findings(_opt(), service="EiOpt")) == ["VR08"]


def test_a_cancelled_opt_must_be_one_the_vtn_acknowledged():
    said = Said(ven_id=VEN_ID)
    said.remember(CreatedOpt(response=EiResponse(request_id="r-1"), opt_id="opt-1"))
    said.remember(CreatedOpt(response=EiResponse(request_id="r-2", code=452), opt_id="opt-2"))
    for opt_id, flagged in (("opt-1", []), ("opt-2", ["VR09"]), ("opt-3", ["VR09"])):
        cancel = CancelOpt(request_id="r-3", opt_id=opt_id, ven_id=VEN_ID)
        assert _flagged(_findings(cancel, service="EiOpt", said=said)) == flagged


def _ven_settings(pki, **fields):
    return VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                              poll_freq_s=1, **fields)


async def test_an_operator_that_cannot_make_the_ven_opt_fails_the_case_saying_why(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    ven = CrowdflexVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)
    given = tmp_path / "step.json"
    refusing = CommandOperator(f"cat > {shlex.quote(str(given))}; echo 'no opt screen' >&2; "
                               "exit 3")
    registered, opted = await run_ven_cases(
        _ven_settings(pki, wait_timeout_s=20), ven, select(["N1_0010", "P1_2010"], VEN_CASES),
        operator=refusing)
    assert registered.passed and not opted.passed
    assert opted.reason == ("operator step create_opt failed: operator command exited 3: "
                            "no opt screen")
    (step,) = opted.steps
    ven_id = step.ven_id
    received = json.loads(given.read_text())
    assert received["action"] == "create_opt" and received["ven_id"] == ven_id
    assert received["instruction"].startswith(f"Have venID {ven_id} send this opt to the VTN")
    params = received["params"]
    assert (params["opt_type"], params["opt_reason"], params["targets"]) == (
        "optOut", "x-schedule", {"ven_ids": [ven_id]})
    assert params["market_context"] == "http://conformance.crowdflex.example/market"
    ((start, duration),) = ((w["start"], w["duration_s"]) for w in params["availability"])
    assert datetime.fromisoformat(start).tzinfo is not None and duration == 7200


def test_the_operator_is_crowdflex_for_its_ven_and_a_prompt_otherwise(tmp_path):
    files = ["--cert", "c", "--key", "k", "--ca", "a"]
    own = build_parser().parse_args(["conformance", "ven", *files, "--ven", "crowdflex"])
    ven = CrowdflexVen(cert=tmp_path, key=tmp_path, ca=tmp_path)
    assert _operator(own, ven, sys.stdout) is ven
    other = build_parser().parse_args(["conformance", "ven", *files])
    assert isinstance(_operator(other, PromptVen(), sys.stdout), PromptOperator)
    hooked = build_parser().parse_args(["conformance", "ven", *files, "--operator", "command",
                                        "--operator-command", "true"])
    assert isinstance(_operator(hooked, PromptVen(), sys.stdout), CommandOperator)


class _ContraryVen(CrowdflexVen):
    """crowdflex's VEN doing the opposite of each opt step: optIn for optOut, and cancelling
    an optID the VTN never acknowledged."""

    async def perform(self, step):
        params = dict(step.params)
        if step.kind is StepKind.CREATE_OPT:
            params["opt_type"] = "optIn" if params["opt_type"] == "optOut" else "optOut"
        else:
            params["opt_id"] = "never-acknowledged"
        await super().perform(Step(kind=step.kind, ven_id=step.ven_id, params=params))


async def test_a_ven_that_opts_other_than_asked_fails_the_opt_cases(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    ven = _ContraryVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)
    results = await run_ven_cases(
        _ven_settings(pki, wait_timeout_s=3), ven,
        select(["N1_0010", "P1_2010", "P1_2030"], VEN_CASES), operator=ven)
    assert [r.passed for r in results] == [True, False, False]
    assert results[1].reason == "its optType is optIn, not optOut"
    assert results[2].reason.startswith("the VEN sent no oadrCancelOpt for optID '")
    assert results[2].reason.endswith("rule VR09: oadrCancelOpt names optID "
                                      "'never-acknowledged', which the VTN never acknowledged")


class _StartsOverVen(CrowdflexVen):
    """crowdflex's VEN registering again whenever the VTN refuses its opt."""

    async def perform(self, step):
        await super().perform(step)
        if step.params.get("event_id", "").startswith("cf-unknown-"):
            await self._client.register()


async def test_a_ven_that_starts_over_after_a_refused_opt_fails_p1_2050(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    ven = _StartsOverVen(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)
    registered, refused = await run_ven_cases(
        _ven_settings(pki, wait_timeout_s=20), ven, select(["N1_0010", "P1_2050"], VEN_CASES),
        operator=ven)
    assert registered.passed and not refused.passed
    assert refused.reason == "it registered again after the refusal"


async def test_a_ven_that_never_comes_fails_saying_so(tmp_path):
    pki = key_pki(tmp_path, KeyType.EC)
    seen = tmp_path / "url"
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  wait_timeout_s=0.5)
    ven = CommandVen(f'echo "$CROWDFLEX_CONFORMANCE_VTN_URL" > {shlex.quote(str(seen))}')
    (first, *_) = await run_ven_cases(settings, ven, VEN_CASES[:1], operator=PromptOperator())
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
                   "--transport", "--xmpp-server", "--xmpp-domain",
                   "--xmpp-resource", "CROWDFLEX_CONFORMANCE_VTN_JID", "--operator",
                   "--operator-command"):
        assert option in text


def test_list_with_push_prints_the_push_catalogue(capsys):
    assert main(["conformance", "ven", "--list", "--push"]) == 0
    listed = capsys.readouterr().out
    assert "E0_6010_TH_VTN" in listed and "E1_1010_TH_VTN" not in listed
    assert "N0_5030_TH_VTN" not in listed  # no poll case for a push VEN
    assert "P0_7050_TH_VTN" in listed and "VR09" in listed
    assert main(["conformance", "ven", "--list"]) == 0
    assert "P1_2010_TH_VTN asked to, the VEN sends an optOut schedule" in " ".join(
        capsys.readouterr().out.split())


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
    async with HarnessVtn(settings, PromptOperator()) as vtn, aiohttp.ClientSession(
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


def test_cannot_run_without_an_operator_it_can_build(tmp_path, capsys):
    pki = key_pki(tmp_path, KeyType.EC)
    files = ["--cert", str(pki.vtn.cert), "--key", str(pki.vtn.key), "--ca", str(pki.ca_cert)]
    assert main(["conformance", "ven", *files, "--operator", "crowdflex"]) == 2
    assert "--operator crowdflex needs --ven crowdflex" in capsys.readouterr().err
    assert main(["conformance", "ven", *files, "--operator", "command"]) == 2
    assert "--operator command needs --operator-command CMD" in capsys.readouterr().err


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


async def test_a_push_answered_without_end_is_cut_at_the_cap(tmp_path):
    """Red team: the harness VTN read a push VEN's answer for as long as the VEN under test sent
    it (up to the request timeout); now it stops past ``MAX_BODY_BYTES`` and says so."""
    pki = key_pki(tmp_path, KeyType.EC)
    sent = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        return web.Response(body=endless_xml(sent), content_type="application/xml")

    receiver = web.Application()
    receiver.router.add_post(SERVICE_PREFIX + "/{service}", endless)
    runner = web.AppRunner(receiver)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(
        cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)).start()
    push_url = f"https://127.0.0.1:{runner.addresses[0][1]}{SERVICE_PREFIX}"
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert, push=True,
                                  wait_timeout_s=0.5, request_timeout_s=10.0)
    tls = client_context(cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert)
    try:
        async with HarnessVtn(settings, PromptOperator()) as vtn, aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls)) as http:
            address = vtn.address
            assert isinstance(address, HttpAddress)
            registration = Codec().encode(CreatePartyRegistration(
                request_id="r-1", ven_name="flooder", http_pull_model=False,
                transport_address=push_url))
            async with http.post(f"{address.url}/EiRegisterParty", data=registration,
                                 headers={"Content-Type": "application/xml"}) as got:
                assert got.status == 200
            vtn.distribute()
            await vtn.pushed()
            with pytest.raises(CaseFailed, match=f"over {MAX_BODY_BYTES} bytes"):
                await vtn.wait_for(CreatedEvent, "an answer", after=vtn.mark())
    finally:
        await runner.cleanup()
    assert sent[0] < 16 * MAX_BODY_BYTES  # what the socket buffers took before the harness left
