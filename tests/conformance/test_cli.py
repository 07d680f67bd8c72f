"""`crowdflex conformance vtn`: options, case list, exit codes, and the JUnit XML and the HTML page.

Full runs go through the real command (``cbp.cli.main``, on a thread with its own event loop)
against crowdflex's VTN with the admin API as operator, and against a deliberately broken VTN
whose replies break passive rules and carry markup.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web
from lxml import etree

from cbp.cli import main
from cbp.conformance import RULES, VTN_CASES
from devpki import KeyType
from schemas import (
    Codec,
    CreatedPartyRegistration,
    CreatePartyRegistration,
    EiResponse,
    Message,
    Profile,
    ProfileName,
    QueryRegistration,
    TransportName,
)

from ..ven.conftest import SERVICE_PATH, scripted_vtn
from .conftest import ADMIN_TOKEN, crowdflex_vtn, key_pki

PROFILES = (Profile(profile_name=ProfileName.OADR_20B, transports=(TransportName.SIMPLE_HTTP,)),)
HOSTILE = "<script>alert(1)</script>"


def test_list_prints_every_case_and_rule(capsys):
    assert main(["conformance", "vtn", "--list"]) == 0
    out = capsys.readouterr().out
    for case in VTN_CASES:
        assert f"{case.case_id}  {case.purpose}" in out
    for rule in RULES:
        assert rule.rule_id in out
    assert main(["conformance", "vtn", "--list", "--only", "G1"]) == 0
    listed = re.findall(r"^([NERPG]1_\d{4}_TH_VEN)", capsys.readouterr().out, re.MULTILINE)
    assert listed == ["G1_4010_TH_VEN", "G1_4011_TH_VEN", "G1_4015_TH_VEN", "G1_4020_TH_VEN"]


def test_help_documents_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["conformance", "vtn", "--help"])
    out = capsys.readouterr().out
    for option in ("--url", "--cert", "--key", "--ca", "--operator", "--admin-url",
                   "--admin-token-env", "--command", "--junit", "--html", "--list", "--only",
                   "--push", "--push-host", "--signed", "--transport", "--vtn-jid",
                   "--xmpp-server", "--xmpp-domain"):
        assert option in out
    assert "not covered" not in out


def test_list_over_xmpp_prints_the_push_catalogue_and_the_skipped_rules(capsys):
    assert main(["conformance", "vtn", "--list", "--transport", "xmpp"]) == 0
    listed = capsys.readouterr().out
    assert "N0_5020_TH_VEN" in listed and "N1_0020_TH_VEN" not in listed
    assert "cases over xmpp" in listed
    skipped = re.findall(r"^  (PR\d\d) .*\[skipped over xmpp: simpleHttp only\]$", listed,
                         re.MULTILINE)
    assert skipped == ["PR03", "PR15"]
    assert main(["conformance", "vtn", "--list"]) == 0
    assert re.findall(r"^  (PR\d\d) .*\[skipped", capsys.readouterr().out, re.MULTILINE) == [
        "PR16"]


def test_list_with_push_prints_the_push_catalogue(capsys):
    assert main(["conformance", "vtn", "--list", "--push"]) == 0
    listed = capsys.readouterr().out
    assert "N0_5020_TH_VEN" in listed and "N1_0020_TH_VEN" not in listed
    assert "N0_5070_TH_VEN" not in listed  # the empty poll does not apply to a push VEN
    assert main(["conformance", "vtn", "--list", "--push", "--signed"]) == 0
    assert "G0_9033_TH_VEN" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "said"), [
    (["--only", "X9_0001"], "no case with ID X9_0001"),
    (["--operator", "command"], "--operator command needs --command"),
    (["--operator", "crowdflex-admin", "--admin-token-env", "CF_TEST_UNSET_TOKEN"],
     "set CF_TEST_UNSET_TOKEN"),
])
def test_what_cannot_run_exits_2_and_says_why(tmp_path, capsys, monkeypatch, extra, said):
    monkeypatch.delenv("CF_TEST_UNSET_TOKEN", raising=False)
    pem = tmp_path / "x.pem"
    pem.write_text("unused")
    files = ["--cert", str(pem), "--key", str(pem), "--ca", str(pem)]
    assert main(["conformance", "vtn", "--url", "https://127.0.0.1:1", *files, *extra]) == 2
    assert said in capsys.readouterr().err
    assert main(["conformance", "vtn", "--url", "https://127.0.0.1:1"]) == 2
    assert "missing --cert, --key, --ca" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "said"), [
    ([], "--transport xmpp needs --vtn-jid"),
    (["--vtn-jid", "vtn@x/openadr", "--signed"], "--signed is Simple HTTP only"),
    (["--vtn-jid", "vtn@x/openadr", "--xmpp-server", "x"], "--xmpp-server 'x' is not HOST:PORT"),
    (["--vtn-jid", "vtn@x/openadr", "--xmpp-server", "x:0"], "is not HOST:PORT"),
    (["--vtn-jid", "vtn@x/openadr"], "missing --cert, --key, --ca"),
])
def test_what_cannot_run_over_xmpp_exits_2_and_says_why(capsys, extra, said):
    assert main(["conformance", "vtn", "--transport", "xmpp", *extra]) == 2
    assert said in capsys.readouterr().err


async def test_a_full_run_against_crowdflex_passes_and_writes_both_reports(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("CF_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    pki = key_pki(tmp_path, KeyType.EC)
    junit, page = tmp_path / "junit.xml", tmp_path / "report.html"
    async with crowdflex_vtn(pki, tmp_path) as served:
        code = await asyncio.to_thread(main, [
            "conformance", "vtn", "--url", served.vtn.url, "--cert", str(pki.ven.cert),
            "--key", str(pki.ven.key), "--ca", str(pki.ca_cert),
            "--operator", "crowdflex-admin", "--admin-url", served.admin_url,
            "--admin-token-env", "CF_TEST_ADMIN_TOKEN", "--junit", str(junit), "--html", str(page)])
    assert code == 0
    suite = etree.parse(str(junit)).getroot()[0]
    assert (suite.get("tests"), suite.get("failures")) == (str(len(VTN_CASES)), "0")
    assert [c.get("name") for c in suite] == [c.case_id for c in VTN_CASES]
    assert "EiRegisterParty: oadrCreatePartyRegistration -> oadrCreatedPartyRegistration" in (
        suite[1].findtext("system-out"))
    html = page.read_text()
    assert all(f"id={c.case_id}" in html for c in VTN_CASES)
    assert "&lt;oadr:oadrCreatePartyRegistration" in html  # request bodies, escaped
    assert "<oadr:" not in html and "<script" not in html and "<link" not in html


def _hostile_reply(message: Message) -> web.Response:
    """The reply, with an xsi:schemaLocation attribute, as text/xml."""
    root = etree.fromstring(Codec().encode(message))
    root.set("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation", "urn:x oadr_20b.xsd")
    return web.Response(body=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                        content_type="text/xml")


async def _broken(service: str, message: Message) -> Message | web.StreamResponse:
    if isinstance(message, QueryRegistration):
        return _hostile_reply(CreatedPartyRegistration(
            response=EiResponse(request_id=message.request_id, description=HOSTILE),
            vtn_id="BROKEN-VTN", profiles=PROFILES))
    assert isinstance(message, CreatePartyRegistration)
    return CreatedPartyRegistration(  # no oadrRequestedOadrPollFreq for a pull VEN
        response=EiResponse(request_id=message.request_id), registration_id="reg-1",
        ven_id="ven-1", vtn_id="BROKEN-VTN", profiles=PROFILES)


async def test_rule_violations_fail_cases_with_the_rule_id(pki, tmp_path):
    junit, page = tmp_path / "junit.xml", tmp_path / "report.html"
    async with scripted_vtn(pki.server_context(), _broken) as vtn:
        code = await asyncio.to_thread(main, [
            "conformance", "vtn", "--url", vtn.url + SERVICE_PATH, "--cert", str(pki.ven.cert),
            "--key", str(pki.ven.key), "--ca", str(pki.ca_cert), "--operator", "command",
            "--command", "false", "--only", "N1_0010", "N1_0020", "--junit", str(junit),
            "--html", str(page)])
    assert code == 1
    failures = {case.get("name"): case.find("failure").get("message")
                for case in etree.parse(str(junit)).getroot()[0]}
    assert "PR02" in failures["N1_0010_TH_VEN"] and "PR03" in failures["N1_0010_TH_VEN"]
    assert "PR15" in failures["N1_0020_TH_VEN"]
    html = page.read_text()
    assert "alert(1)" in html and "<script" not in html  # shown as text, never as markup
