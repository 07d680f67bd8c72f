"""Hypothesis fuzzing of the VTN's HTTP endpoints (bounded; the long runs live in tests/fuzz).

One running VTN per module (127.0.0.1, port 0, real mutual TLS), one registered fuzzing VEN.
Contract for ANY request: HTTP 200 carrying a decodable OpenADR payload -- an oadrResponse's code is
200 or 450..469 and never the transport's catch-all "internal error" (that would be a bug that
escaped a service) -- or a clean 400/404/405/408/413/415. Never a 500. And an honest VEN polling
after each example is answered.

Shapes: mutated corpus payloads on any service, random bytes and content types, spliced text,
random paths; huge, negative and out-of-range durations and date-times in every payload type;
bodies under every Content-Encoding, valid or not; identifiers around and far over the length cap
(those over it always 454).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Message, Poll, Response
from tests.fuzz.contract import seeds
from tests.kit.vtn import RunningVtn, running_vtn
from tests.vtn.harness import CODEC, RawVen, raw_ven

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUZZ = settings(max_examples=40, suppress_health_check=(HealthCheck.function_scoped_fixture,))
SERVICES = ("EiRegisterParty", "EiEvent", "EiReport", "EiOpt", "OadrPoll")
CLEAN_HTTP = frozenset({400, 404, 405, 408, 413, 415})
INTERNAL = "internal error"
CONTENT_TYPES = ("application/xml", "text/xml", "application/xml; charset=utf-8",
                 "application/xml; charset=utf-16", "text/plain", "", "application/json",
                 "application/xml; boundary=<x>", "multipart/form-data; boundary=x")


@dataclass
class Target:
    vtn: RunningVtn
    fuzzer: RawVen
    honest: RawVen


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def target(pki, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('httpfuzz') / 'vtn.db'}"
    # request limits and budgets off: this fuzzes the documents, test_limits/test_budgets the rest
    async with running_vtn(pki, url, rate_limit_per_s=None, byte_budget_per_s=None,
                           cpu_budget_per_s=None, body_timeout_s=2.0) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as fuzzer, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[3])) as honest:
        await fuzzer.register("fuzzer")
        await honest.register("honest")
        yield Target(vtn, fuzzer, honest)


def _as_fuzzer(doc: bytes, ven_id: str) -> bytes:
    """A corpus document speaking as the fuzzing VEN, so mutations reach the services."""
    for corpus_ven in (b"agg-flexcrowd-01", b"3f:9a:21:c4:7e:08:d5:6b:1a:f0"):
        doc = doc.replace(corpus_ven, ven_id.encode())
    return doc


@st.composite
def mutated_seed(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid corpus payload, then 0-3 byte edits (overwrite, delete, insert, truncate)."""
    name, doc = draw(st.sampled_from(seeds()))
    data = bytearray(doc)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        match draw(st.sampled_from(("overwrite", "delete", "insert", "truncate"))):
            case "overwrite":
                data[at:at + 1] = draw(st.binary(min_size=1, max_size=4))
            case "delete":
                del data[at:at + draw(st.integers(1, 16))]
            case "insert":
                data[at:at] = draw(st.sampled_from(
                    (b"<", b">", b"&", b"&amp;", b"]]>", b"<!--", b"\x00", b"\xff", b"<x>",
                     b"</", b'"', b"<!DOCTYPE x>", b"<?pi?>", b"999999999999999999999")))
            case _:
                del data[at:]
    return name, bytes(data)


async def _post(target: Target, service: str, body: bytes, content_type: str,
                **more_headers: str) -> int | None:
    """Post and check the contract; the OpenADR code of an oadrResponse reply, else None."""
    headers = {"Content-Type": content_type} if content_type else {}
    headers.update(more_headers)
    async with target.fuzzer.session.post(f"{target.vtn.url}/{service}", data=body,
                                          headers=headers, compress=None) as http:
        status, raw = http.status, await http.read()
    assert status != 500 and status < 500, (status, raw[:300])
    if status != 200:
        assert status in CLEAN_HTTP, (status, raw[:300])
        return None
    reply = CODEC.decode(raw)  # whatever the VTN says is a valid OpenADR payload
    if isinstance(reply, Response):
        code = reply.response.code
        assert code == 200 or 450 <= code <= 469, code
        assert INTERNAL not in (reply.response.description or ""), reply.response.description
        return code
    return None


async def _honest_poll_answered(target: Target) -> None:
    reply = await target.honest.poll()  # RawVen.post asserts HTTP 200
    assert isinstance(reply, Message)


@FUZZ
@given(seed=mutated_seed(), service=st.sampled_from(SERVICES))
async def test_mutated_valid_payloads_on_any_service(target: Target, seed: tuple[str, bytes],
                                                     service: str) -> None:
    _, doc = seed
    await _post(target, service, _as_fuzzer(doc, target.fuzzer.ven_id), "application/xml")
    await _honest_poll_answered(target)


@FUZZ
@given(body=st.binary(max_size=2048), service=st.sampled_from(SERVICES),
       content_type=st.sampled_from(CONTENT_TYPES))
async def test_random_bytes_with_any_content_type(target: Target, body: bytes, service: str,
                                                  content_type: str) -> None:
    await _post(target, service, body, content_type)


@FUZZ
@given(text=st.text(max_size=512), service=st.sampled_from(SERVICES))
async def test_random_text_wrapped_in_an_oadr_payload(target: Target, text: str,
                                                      service: str) -> None:
    """Arbitrary (escaped) text where a venID goes, and raw text spliced into the markup."""
    xml_safe = "".join(c for c in text if c in "\t\n" or (c >= " " and not 0xD800 <= ord(c)
                                                         <= 0xDFFF and c not in "\ufffe\uffff"))
    poll = CODEC.encode(Poll(ven_id=xml_safe or "x"))
    await _post(target, service, poll, "application/xml")
    spliced = poll.replace(b"<ei:venID>", b"<ei:venID>" + text.encode("utf-8", "surrogatepass"))
    await _post(target, service, spliced, "application/xml")


@FUZZ
@given(path=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                                           exclude_characters="?#%"), max_size=40))
async def test_random_service_paths(target: Target, path: str) -> None:
    body = _as_fuzzer(dict(seeds())["oadrPoll"], target.fuzzer.ven_id)
    async with target.fuzzer.session.post(f"{target.vtn.url}/{path}", data=body,
                                          headers={"Content-Type": "application/xml"}) as http:
        # 200 only where the path normalises to a service (e.g. "./OadrPoll")
        assert http.status == 200 or http.status in CLEAN_HTTP, (path, http.status)


DURATIONS = ("P999999999D", "-P999999999D", "P1000000000D", "P36525D", "P36526D", "-P36526D",
             "P5218W", "PT99999999999999H", "PT99999999999999999999S", "-P1D", "PT0S", "P1D")
DATE_TIMES = ("9999-12-31T23:59:59Z", "9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z",
              "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01T00:00:00Z")
_DURATION_TEXT = re.compile(rb"(<xcal:duration>)([^<]*)(</xcal:duration>)")
_DATE_TIME_TEXT = re.compile(rb"(<xcal:date-time>)([^<]*)(</xcal:date-time>)")
_MIN_PERIOD_TEXT = re.compile(
    rb"(<oadr:oadrM(?:in|ax)Period>)([^<]*)(</oadr:oadrM(?:in|ax)Period>)")


@FUZZ
@given(seed=st.sampled_from(seeds()), service=st.sampled_from(SERVICES),
       durations=st.lists(st.sampled_from(DURATIONS), min_size=1, max_size=4),
       starts=st.lists(st.sampled_from(DATE_TIMES), min_size=1, max_size=4))
async def test_huge_and_out_of_range_times_in_any_payload(
        target: Target, seed: tuple[str, bytes], service: str, durations: list[str],
        starts: list[str]) -> None:
    """Every duration, min/max period and date-time of a corpus payload replaced (cycling
    through the drawn values): sums past what a date-time holds never reach a service."""
    doc = _as_fuzzer(seed[1], target.fuzzer.ven_id)
    for pattern, values in ((_DURATION_TEXT, durations), (_MIN_PERIOD_TEXT, durations),
                            (_DATE_TIME_TEXT, starts)):
        cycle = iter(values * 100)
        doc = pattern.sub(lambda m, c=cycle: m[1] + next(c).encode() + m[3], doc)
    await _post(target, service, doc, "application/xml")
    await _honest_poll_answered(target)


ENCODINGS = ("gzip", "deflate", "br", "x-gzip", "identity", "gzip, gzip", "compress",
             "x-unknown", "")


@FUZZ
@given(seed=st.sampled_from(seeds()), encoding=st.sampled_from(ENCODINGS),
       packing=st.sampled_from(("gzip", "deflate", "raw", "truncated gzip", "junk")),
       junk=st.binary(max_size=64))
async def test_bodies_under_any_content_encoding(target: Target, seed: tuple[str, bytes],
                                                 encoding: str, packing: str,
                                                 junk: bytes) -> None:
    """Corpus payloads gzip- or deflate-packed, or not, or truncated, or junk, under every
    Content-Encoding: a clean answer, never a 500."""
    doc = _as_fuzzer(seed[1], target.fuzzer.ven_id)
    body = {"gzip": lambda: gzip.compress(doc), "deflate": lambda: zlib.compress(doc),
            "raw": lambda: doc, "truncated gzip": lambda: gzip.compress(doc)[:-12],
            "junk": lambda: b"\x1f\x8b\x08\x00" + junk}[packing]()
    headers = {"Content-Encoding": encoding} if encoding else {}
    await _post(target, "OadrPoll" if "Poll" in seed[0] else "EiReport", body,
                "application/xml", **headers)
    await _honest_poll_answered(target)


_ID_TEXT = re.compile(
    rb"(<(?:(?:ei|pyld|oadr|emix):\w+(?:ID|Name|Context|Address)|xcal:text)>)([^<]*)(</)")
ID_CAP = 512


@FUZZ
@given(seed=st.sampled_from(seeds()), service=st.sampled_from(SERVICES),
       length=st.one_of(st.integers(ID_CAP - 2, ID_CAP + 2), st.integers(0, 200_000)),
       which=st.integers(0, 50))
async def test_identifiers_around_and_over_the_length_cap(
        target: Target, seed: tuple[str, bytes], service: str, length: int,
        which: int) -> None:
    """One identifier or name of a corpus payload made ``length`` characters long: over the
    cap (512) the answer is always 454, whatever the service; under it the usual contract."""
    doc = _as_fuzzer(seed[1], target.fuzzer.ven_id)
    found = list(_ID_TEXT.finditer(doc))
    if not found:
        return
    match = found[which % len(found)]
    doc = doc[:match.start(2)] + b"v" * length + doc[match.end(2):]
    code = await _post(target, service, doc, "application/xml")
    if length > ID_CAP:
        assert code == 454, (match[1], length, code)
    await _honest_poll_answered(target)
