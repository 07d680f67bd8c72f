"""Hostile input against a running VTN (127.0.0.1, port 0, real mutual TLS).

Each case says what it tried. The contract: an OpenADR response carrying its code (HTTP 200 with
an oadrResponse), or a clean HTTP 400/408/413/415 -- never a 500, never a crash -- and an honest
VEN polling at the same time is answered every time.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas import (
    CancelOpt,
    CancelPartyRegistration,
    CreatedEvent,
    DistributeEvent,
    EiResponse,
    EventResponse,
    OptType,
    Poll,
    RequestEvent,
    Response,
)
from tests.kit.vtn import RunningVtn, running_vtn
from tests.vtn.harness import CODEC, RawVen, code_of, raw_ven

from .rawhttp import chunked_encoding, chunks, nothing, raw_post

BODY_TIMEOUT_S = 0.4
MB = 1024 * 1024


def _poll(ven_id: str) -> bytes:
    return CODEC.encode(Poll(ven_id=ven_id))


def _with_doctype(doc: bytes, dtd: bytes) -> bytes:
    return doc.replace(b"<oadr:oadrPayload", dtd + b"\n<oadr:oadrPayload", 1)


def _openleadr_killer(ven_id: str) -> bytes:
    """A valid oadrPoll with an internal DTD whose entity stands in for the venID: a validating
    lxml parser (openleadr's) segfaults on it, taking the whole VTN process down."""
    doc = _with_doctype(_poll(ven_id),
                        b'<!DOCTYPE oadr:oadrPayload [<!ENTITY v "' + ven_id.encode() + b'">]>')
    return doc.replace(f">{ven_id}<".encode(), b">&v;<")


def _xxe(ven_id: str) -> bytes:
    doc = _with_doctype(_poll(ven_id),
                        b'<!DOCTYPE oadr:oadrPayload [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
    return doc.replace(f">{ven_id}<".encode(), b">&x;<")


def _billion_laughs(_: str) -> bytes:
    levels = b"".join(b'<!ENTITY l%d "%s">' % (i, (b"&l%d;" % (i - 1)) * 10)
                      for i in range(1, 10))
    return b'<?xml version="1.0"?><!DOCTYPE z [<!ENTITY l0 "lol">' + levels + b"]><z>&l9;</z>"


def _quadratic(_: str) -> bytes:
    # one 50 KB entity referenced 10,000 times: 500 MB once expanded, no nesting needed
    return (b'<?xml version="1.0"?><!DOCTYPE z [<!ENTITY a "' + b"a" * 50_000 + b'">]><z>'
            + b"&a;" * 10_000 + b"</z>")


def _deep(_: str) -> bytes:
    return b"<a>" * 10_000 + b"</a>" * 10_000


def _utf16(ven_id: str) -> bytes:
    return _poll(ven_id).decode().replace("UTF-8", "UTF-16").replace("utf-8", "UTF-16").encode(
        "utf-16")


def _latin1_declared(ven_id: str) -> bytes:
    text = _poll(ven_id).decode()
    return ('<?xml version="1.0" encoding="ISO-8859-1"?>' + text.split("?>", 1)[-1]).encode(
        "latin-1")


def _invalid_utf8(ven_id: str) -> bytes:
    return _poll(ven_id).replace(ven_id.encode(), ven_id.encode() + b"\xff\xfe\xc0")


def _schema_invalid(ven_id: str) -> bytes:
    # oadrPoll with an element the XSD does not allow
    return _poll(ven_id).replace(b"</ei:venID>", b"</ei:venID><ei:venID>second</ei:venID>")


def _unknown_root(_: str) -> bytes:
    return b'<?xml version="1.0"?><hello xmlns="urn:nobody">world</hello>'


@dataclass(frozen=True, slots=True)
class Case:
    what: str
    build: Callable[[str], bytes]
    code: int  # the OpenADR response code expected in an HTTP 200 oadrResponse
    service: str = "OadrPoll"
    because: str = ""  # words of the defence that must be the one refusing it (its reason)


# the byte scan before libxml2 (schemas/_intake.py): later checks would also answer 454
_DTD = "document contains a DOCTYPE or markup declaration"

CASES = (
    Case("DOCTYPE with an entity standing in for the venID (kills openleadr's VTN)",
         _openleadr_killer, 454, because=_DTD),
    Case("XXE: external entity reading /etc/passwd", _xxe, 454, because=_DTD),
    Case("billion laughs (nested entity expansion)", _billion_laughs, 454, because=_DTD),
    Case("quadratic blow-up (one big entity referenced 10,000 times)", _quadratic, 454,
         because=_DTD),
    Case("bare ENTITY declaration inside an element", lambda v: _poll(v).replace(
        b"<ei:venID>", b"<!ENTITY a 'b'><ei:venID>"), 454, because=_DTD),
    Case("10,000-deep element nesting", _deep, 454, because="nests too deeply"),
    Case("UTF-16 document", _utf16, 454, because="not UTF-8"),
    Case("ISO-8859-1 declared encoding", _latin1_declared, 454, because="declares encoding"),
    Case("invalid UTF-8 bytes in the venID", _invalid_utf8, 454),
    Case("truncated XML (half an oadrPoll)", lambda v: _poll(v)[: len(_poll(v)) // 2], 454),
    Case("empty body", lambda _: b"", 454),
    Case("schema-invalid oadrPoll (two venIDs)", _schema_invalid, 454),
    Case("well-formed XML whose root is no oadrPayload", _unknown_root, 454),
    Case("valid oadrPoll posted to EiEvent", _poll, 453, "EiEvent"),
    Case("valid oadrPoll posted to EiRegisterParty", _poll, 453, "EiRegisterParty"),
)


@dataclass
class Scene:
    vtn: RunningVtn
    honest: RawVen
    attacker: RawVen
    attacker_context: ssl.SSLContext


@pytest.fixture
async def scene(pki, tmp_path: Path) -> AsyncIterator[Scene]:
    # rate limits off: these tests are about what reaches the parser (test_limits.py does limits)
    attacker_context = pki.client_context(ven=pki.vens[1])
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                           body_timeout_s=BODY_TIMEOUT_S, rate_limit_per_s=None) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as honest, \
            raw_ven(vtn.url, attacker_context) as attacker:
        await honest.register("honest")
        await attacker.register("attacker")
        await honest.drain()
        yield Scene(vtn, honest, attacker, attacker_context)


async def post_raw(ven: RawVen, service: str, body: bytes,
                   content_type: str | None = "application/xml") -> tuple[int, bytes]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    async with ven.session.post(f"{ven.url}/{service}", data=body, headers=headers) as reply:
        return reply.status, await reply.read()


def openadr_code(status: int, body: bytes) -> int:
    assert status == 200, (status, body[:300])
    return code_of(CODEC.decode(body))


async def assert_still_serving(scene: Scene) -> None:
    reply = await scene.honest.poll()
    assert isinstance(reply, Response) and reply.response.code == 200


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.what)
async def test_hostile_xml_gets_its_openadr_code(scene: Scene, case: Case) -> None:
    status, body = await post_raw(scene.attacker, case.service, case.build(scene.attacker.ven_id))
    assert openadr_code(status, body) == case.code, case.what
    reply = CODEC.decode(body)
    assert isinstance(reply, Response)
    assert case.because in (reply.response.description or ""), reply.response.description
    assert b"root:" not in body  # nothing of /etc/passwd, whatever was tried
    await assert_still_serving(scene)


@pytest.mark.parametrize(("what", "content_type"), [
    ("no Content-Type at all", None),
    ("text/plain", "text/plain"),
    ("application/json", "application/json"),
    ("form-encoded", "application/x-www-form-urlencoded"),
])
async def test_wrong_content_type_is_415(scene: Scene, what: str, content_type: str | None
                                         ) -> None:
    status, _ = await post_raw(scene.attacker, "OadrPoll", _poll(scene.attacker.ven_id),
                               content_type)
    assert status == 415, what
    await assert_still_serving(scene)


async def test_unknown_service_path_is_404_not_500(scene: Scene) -> None:
    status, _ = await post_raw(scene.attacker, "EiNothing", _poll(scene.attacker.ven_id))
    assert status == 404


async def test_50_mb_body_announced_by_content_length_is_413_before_reading(scene: Scene
                                                                            ) -> None:
    """Tried: Content-Length of 50 MB and then sending the 50 MB."""
    reply = await raw_post(f"{scene.vtn.url}/OadrPoll", scene.attacker_context,
                           head={"Content-Type": "application/xml",
                                 "Content-Length": str(50 * MB)},
                           body=chunks(b" " * (50 * MB), MB))
    assert reply.status == 413
    await assert_still_serving(scene)


async def test_50_mb_chunked_body_without_length_is_413_at_the_cap(scene: Scene) -> None:
    """Tried: Transfer-Encoding chunked (no Content-Length), 50 MB of it."""
    reply = await raw_post(f"{scene.vtn.url}/OadrPoll", scene.attacker_context,
                           head={"Content-Type": "application/xml",
                                 "Transfer-Encoding": "chunked"},
                           body=chunked_encoding(chunks(b" " * (50 * MB), MB)))
    assert reply.status == 413
    await assert_still_serving(scene)


async def test_content_length_that_lies_short_is_refused_cleanly(scene: Scene) -> None:
    """Tried: Content-Length 40 for a full oadrPoll (the rest is garbage for the next request)."""
    doc = _poll(scene.attacker.ven_id)
    reply = await raw_post(f"{scene.vtn.url}/OadrPoll", scene.attacker_context,
                           head={"Content-Type": "application/xml", "Content-Length": "40"},
                           body=chunks(doc))
    assert reply.status in (200, 400)
    if reply.status == 200:
        assert code_of(CODEC.decode(reply.body)) == 454  # the 40 bytes are truncated XML
    await assert_still_serving(scene)


async def trickle(data: bytes, every_s: float) -> AsyncIterator[bytes]:
    """The slow-loris: one byte, then a pause (the attack's pacing, not synchronisation)."""
    for index in range(len(data)):
        yield data[index:index + 1]
        await asyncio.sleep(every_s)


async def test_slow_loris_body_times_out_with_408(scene: Scene) -> None:
    """Tried: an honest Content-Length, the body sent one byte every 50 ms."""
    doc = _poll(scene.attacker.ven_id)
    started = time.monotonic()
    reply = await raw_post(f"{scene.vtn.url}/OadrPoll", scene.attacker_context,
                           head={"Content-Type": "application/xml",
                                 "Content-Length": str(len(doc))},
                           body=trickle(doc, 0.05))
    assert reply.status == 408
    assert time.monotonic() - started < BODY_TIMEOUT_S + 5  # the VTN did not wait for it all
    await assert_still_serving(scene)


async def test_body_that_never_comes_times_out_with_408(scene: Scene) -> None:
    """Tried: headers promising 1,000 bytes, then silence with the connection held open."""
    reply = await raw_post(f"{scene.vtn.url}/OadrPoll", scene.attacker_context,
                           head={"Content-Type": "application/xml", "Content-Length": "1000"},
                           body=nothing())
    assert reply.status == 408


async def test_unknown_ids_get_their_codes(scene: Scene) -> None:
    me = scene.attacker.ven_id
    ack = CreatedEvent(response=EiResponse(request_id="a"), ven_id=me, event_responses=(
        EventResponse(request_id="a", event_id="no-such-event", modification_number=0,
                      opt_type=OptType.OPT_IN),))
    assert code_of(await scene.attacker.post("EiEvent", ack)) == 452
    assert code_of(await scene.attacker.post(
        "EiOpt", CancelOpt(request_id="o", opt_id="no-such-opt", ven_id=me))) == 452
    assert code_of(await scene.attacker.post("EiRegisterParty", CancelPartyRegistration(
        request_id="c", registration_id="no-such-registration", ven_id=me))) == 452
    assert code_of(await scene.attacker.post("OadrPoll", Poll(ven_id="no-such-ven"))) == 463
    await assert_still_serving(scene)


async def test_oversized_ids_are_refused_and_not_echoed_whole(scene: Scene) -> None:
    """Tried: a 300 KB venID and a 300 KB eventID (under the 1 MB body cap): refused by the
    codec's identifier cap (max_id_chars, 512) with 454 before any service looks them up (they
    were 463 and 452, unknown IDs, before the cap)."""
    huge = "V" * 300_000
    status, body = await post_raw(scene.attacker, "OadrPoll", _poll(huge))
    assert openadr_code(status, body) == 454
    _refused_by_the_id_cap(body, "venID")
    ack = CreatedEvent(response=EiResponse(request_id="a"), ven_id=scene.attacker.ven_id,
                       event_responses=(EventResponse(request_id="a", event_id=huge,
                                                      modification_number=0,
                                                      opt_type=OptType.OPT_IN),))
    status, body = await post_raw(scene.attacker, "EiEvent", CODEC.encode(ack))
    assert openadr_code(status, body) == 454
    _refused_by_the_id_cap(body, "eventID")
    await assert_still_serving(scene)


def _refused_by_the_id_cap(body: bytes, element: str) -> None:
    """The reply is short and its reason is the identifier cap (no other check refused it)."""
    assert len(body) < 4_000
    reply = CODEC.decode(body)
    assert isinstance(reply, Response)
    said = reply.response.description or ""
    assert f"<{element}> is 300000 characters long, over the 512-character cap" in said, said


MARKUP = '<script>alert("x")</script>&amp;]]><![CDATA[x]]>'


async def test_markup_in_a_request_id_is_escaped_in_the_reply_bytes(scene: Scene) -> None:
    status, body = await post_raw(scene.attacker, "EiEvent", CODEC.encode(
        RequestEvent(request_id=MARKUP, ven_id=scene.attacker.ven_id)))
    assert status == 200
    assert b"<script>" not in body and b"<![CDATA[" not in body
    assert b"&lt;script&gt;" in body and b"&amp;amp;" in body
    reply = CODEC.decode(body)
    assert isinstance(reply, DistributeEvent)
    assert reply.response.request_id == MARKUP  # exactly as received, no markup interpreted


async def test_markup_in_a_ven_id_is_escaped_in_the_error_description(scene: Scene) -> None:
    status, body = await post_raw(scene.attacker, "OadrPoll", _poll(MARKUP))
    assert openadr_code(status, body) == 463
    assert b"<script>" not in body and b"&lt;script&gt;" in body


async def test_digit_only_ids_stay_strings(scene: Scene) -> None:
    status, body = await post_raw(scene.attacker, "EiEvent", CODEC.encode(
        RequestEvent(request_id="000123", ven_id=scene.attacker.ven_id)))
    reply = CODEC.decode(body)
    assert status == 200 and isinstance(reply, DistributeEvent)
    assert reply.response.request_id == "000123" and b">000123<" in body


async def test_honest_polls_all_succeed_during_a_hostile_barrage(scene: Scene) -> None:
    """An attacker loops over every hostile case (and slow bodies) while the honest VEN polls;
    every honest poll is answered 200 with an oadrResponse 200."""
    stop = asyncio.Event()
    attacks = 0

    async def attack() -> None:
        nonlocal attacks
        while not stop.is_set():
            for case in CASES:
                status, body = await post_raw(scene.attacker, case.service,
                                              case.build(scene.attacker.ven_id))
                assert status != 500 and openadr_code(status, body) == case.code
                attacks += 1

    async def loris() -> None:
        while not stop.is_set():
            reply = await raw_post(f"{scene.vtn.url}/OadrPoll", scene.attacker_context,
                                   head={"Content-Type": "application/xml",
                                         "Content-Length": "1000"}, body=nothing())
            assert reply.status == 408

    async def honest() -> int:
        answered = 0
        for _ in range(40):
            await assert_still_serving(scene)
            answered += 1
        stop.set()
        return answered

    async with asyncio.timeout(60), asyncio.TaskGroup() as group:
        attackers = [group.create_task(attack()), group.create_task(attack()),
                     group.create_task(loris())]
        polls = group.create_task(honest())
    assert polls.result() == 40
    assert attacks >= len(CASES)  # the barrage really ran alongside
    assert all(task.done() for task in attackers)
