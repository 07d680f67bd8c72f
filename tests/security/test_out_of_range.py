"""Finding 8 of the second security review: input a VEN controls that used to end in an HTTP 500
or the transport's catch-all 469 with an ERROR traceback. Real VTN, real mutual TLS, loopback.

Each case is a schema-valid document whose times or durations, once added up, fall outside
what a date-time can hold, or a body whose Content-Encoding lies. The contract: its specific
code (454 in an oadrResponse, or HTTP 400), one INFO line, nothing at WARNING or above, and an
honest VEN polling next to it is answered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from schemas import Message, Response
from tests.fuzz.contract import seeds
from tests.kit.vtn import RunningVtn, running_vtn
from tests.vtn.harness import CODEC, RawVen, raw_ven

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEEDS = dict(seeds())
_CORPUS_VENS = (b"agg-flexcrowd-01", b"3f:9a:21:c4:7e:08:d5:6b:1a:f0")


@dataclass
class Scene:
    vtn: RunningVtn
    attacker: RawVen
    honest: RawVen


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def scene(pki, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scene]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('range') / 'vtn.db'}"
    async with running_vtn(pki, url) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as attacker, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[3])) as honest:
        await attacker.register("attacker")
        await honest.register("honest")
        yield Scene(vtn, attacker, honest)


def _doc(name: str, ven_id: str, edits: list[tuple[bytes, bytes]]) -> bytes:
    doc = SEEDS[name]
    for corpus_ven in _CORPUS_VENS:
        doc = doc.replace(corpus_ven, ven_id.encode())
    for old, new in edits:
        assert old in doc, (name, old)
        doc = doc.replace(old, new)
    return doc


REPORT_START = b"<xcal:date-time>2025-03-18T13:55:00Z</xcal:date-time>"
REPORT_LENGTH = b"<xcal:duration><xcal:duration>PT1H10M</xcal:duration></xcal:duration>"


def _duration(text: bytes) -> bytes:
    return b"<xcal:duration>" + text + b"</xcal:duration>"


def _start(text: bytes) -> bytes:
    return b"<xcal:date-time>" + text + b"</xcal:date-time>"


HUGE = b"P999999999D"
CASES = {  # name: (service, corpus document, [(old, new), ...])
    "reportInterval 9999-12-31 + P1D": ("EiReport", "oadrCreateReport", [
        (REPORT_START, _start(b"9999-12-31T00:00:00Z")),
        (REPORT_LENGTH, b"<xcal:duration>" + _duration(b"P1D") + b"</xcal:duration>")]),
    "reportInterval 0001-01-01 + -P1D": ("EiReport", "oadrCreateReport", [
        (REPORT_START, _start(b"0001-01-01T00:00:00Z")),
        (REPORT_LENGTH, b"<xcal:duration>" + _duration(b"-P1D") + b"</xcal:duration>")]),
    "oadrCreateReport granularity P999999999D": ("EiReport", "oadrCreateReport", [
        (_duration(b"PT4S"), _duration(HUGE))]),
    "oadrCreateReport reportInterval P999999999D": ("EiReport", "oadrCreateReport", [
        (b"PT1H10M", HUGE)]),
    "oadrCreateOpt vavailability P999999999D": ("EiOpt", "oadrCreateOpt", [
        (_duration(b"PT4H"), _duration(HUGE))]),
    "oadrUpdateReport interval P999999999D": ("EiReport", "oadrUpdateReport", [
        (_duration(b"PT4S"), _duration(HUGE))]),
    "oadrUpdateReport report P999999999D": ("EiReport", "oadrUpdateReport", [
        (_duration(b"PT40S"), _duration(HUGE))]),
    "oadrUpdateReport interval 9999-12-31T23:59:59 + PT4S": ("EiReport", "oadrUpdateReport", [
        (_start(b"2025-03-18T14:00:00Z"), _start(b"9999-12-31T23:59:59Z"))]),
    "oadrRegisterReport oadrMinPeriod P999999999D": ("EiReport", "oadrRegisterReport", [
        (b"<oadr:oadrMinPeriod>PT4S</oadr:oadrMinPeriod>",
         b"<oadr:oadrMinPeriod>" + HUGE + b"</oadr:oadrMinPeriod>")]),
}


def _quiet(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize("case", sorted(CASES))
async def test_out_of_range_times_are_454_with_one_info_line(
        scene: Scene, case: str, caplog: pytest.LogCaptureFixture) -> None:
    service, seed, edits = CASES[case]
    doc = _doc(seed, scene.attacker.ven_id, edits)
    caplog.set_level(logging.INFO)
    async with scene.attacker.session.post(f"{scene.vtn.url}/{service}", data=doc,
                                           headers={"Content-Type": "application/xml"}) as http:
        assert http.status == 200
        reply = CODEC.decode(await http.read())
    assert isinstance(reply, Response) and reply.response.code == 454, reply
    assert "out of range" in (reply.response.description or "")
    assert not _quiet(caplog), [r.getMessage() for r in _quiet(caplog)]
    refused = [r for r in caplog.records if "refused on" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.INFO
    assert isinstance(await scene.honest.poll(), Message)


@pytest.mark.parametrize("body", [b"not gzip at all", b"\x1f\x8b\x08\x00" + b"\xff" * 64],
                         ids=["no gzip", "gzip header, corrupt deflate"])
async def test_invalid_gzip_body_is_400_with_one_info_line(
        scene: Scene, body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with scene.attacker.session.post(
            f"{scene.vtn.url}/OadrPoll", data=body,
            headers={"Content-Type": "application/xml", "Content-Encoding": "gzip"}) as http:
        assert http.status == 400, await http.text()
        assert "encoding" in (await http.text()).lower()
    assert not _quiet(caplog), [r.getMessage() for r in _quiet(caplog)]
    refused = [r for r in caplog.records if "Content-Encoding" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.INFO
    assert isinstance(await scene.honest.poll(), Message)
