"""A VEN cannot forge log lines: what it chose (IDs, values the XSD quotes back in a refusal)
reaches the VTN's log escaped, on the line that names it (real VTN, real mutual TLS, loopback);
an eventID a VTN chose reaches the VEN's log the same way.

XML 1.0 forbids ESC (U+001B) even as a character reference, so the ANSI escape a VEN can send
is the 8-bit CSI U+009B; the helper's own test covers ESC."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from schemas import CreatedEvent, CreateReport, EiResponse, EventResponse, OptType, Response
from schemas.logtext import MAX_LOGGED_CHARS, escaped
from tests.kit.pki import Pki
from tests.kit.vtn import running_vtn
from tests.ven.scripts import distribute, event, registered, report_request
from tests.vtn.harness import CODEC, RawVen, raw_ven
from ven import Connection, VenClient, VenSettings

FORGED = "\n2026-12-07 01:00:00,000 WARNING vtn.admin: admin token changed\u009b31m\u202e"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def attacker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RawVen]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('logs') / 'vtn.db'}"
    async with running_vtn(pki, url) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as ven:
        await ven.register("attacker")
        yield ven


def _ack(ven_id: str, event_id: str) -> bytes:
    return CODEC.encode(CreatedEvent(
        response=EiResponse(request_id="r1"), ven_id=ven_id,
        event_responses=(EventResponse(request_id="r1", event_id=event_id,
                                       modification_number=0, opt_type=OptType.OPT_IN),)))


CASES = {
    # an eventID the VTN never sent: refused 452 and logged with the ID
    "eventID": lambda ven_id: _ack(ven_id, "e" + FORGED),
    # a responseCode off the XSD's pattern: libxml2 quotes the value in the 454 it causes
    "value quoted by the XSD": lambda ven_id: _ack(ven_id, "e").replace(
        b"<ei:responseCode>200<", b"<ei:responseCode>200" + FORGED.encode() + b"<", 1),
}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_forged_line_in_a_ven_value_is_logged_escaped_on_one_line(
        attacker: RawVen, case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    body = CASES[case](attacker.ven_id)
    async with attacker.session.post(f"{attacker.url}/EiEvent", data=body,
                                     headers={"Content-Type": "application/xml"}) as http:
        reply = CODEC.decode(await http.read())
    assert isinstance(reply, Response) and reply.response.code in (452, 454), reply
    lines = [r.getMessage() for r in caplog.records if "refused on" in r.getMessage()]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.isprintable(), line  # no newline, CSI or bidi override reaches the log
    assert "\\n2026-12-07 01:00:00,000 WARNING" in line and "\\x9b31m\\u202e" in line, line


async def test_a_forged_line_in_an_event_id_from_the_vtn_is_logged_escaped_by_the_ven(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with VenClient(VenSettings(ven_name="v", connection=Connection(
            vtn_url="https://127.0.0.1:9", ssl_context=None))) as ven:  # no on_event: opts out
        registered(ven)
        await ven.receive(distribute(event("e" + FORGED, 0)))
    lines = [r.getMessage() for r in caplog.records if "opting out of" in r.getMessage()]
    assert len(lines) == 1 and lines[0].isprintable(), lines
    assert "\\n2026-12-07 01:00:00,000 WARNING" in lines[0], lines


async def test_a_never_offered_report_the_vtn_asks_for_is_logged_escaped_and_capped(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    specifier = "s" * 3000 + FORGED
    async with VenClient(VenSettings(ven_name="v", connection=Connection(
            vtn_url="https://127.0.0.1:9", ssl_context=None))) as ven:
        registered(ven)
        await ven.receive(CreateReport(request_id="r1",
                                       report_requests=(report_request(specifier),)))
    lines = [r.getMessage() for r in caplog.records if "never offered" in r.getMessage()]
    assert len(lines) == 1 and lines[0].isprintable(), lines
    assert "s" * 100 in lines[0] and f"({len(repr(specifier))} characters)" in lines[0], lines
    assert len(lines[0]) < MAX_LOGGED_CHARS + 100, len(lines[0])


def test_escaped_writes_control_characters_as_repr_does_and_caps_the_length() -> None:
    assert escaped("a\nb\r\x1b[31m\u2028") == "a\\nb\\r\\x1b[31m\\u2028"
    assert escaped(repr("a\nb")) == repr("a\nb")  # quoted with !r already: not twice
    assert escaped(ValueError("no event 'é'")) == "no event 'é'"
    long = escaped("x" * 10_000)
    assert long == "x" * MAX_LOGGED_CHARS + "... (10000 characters)"
