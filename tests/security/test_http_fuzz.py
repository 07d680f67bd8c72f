"""Hypothesis fuzzing of the VTN's HTTP endpoints (bounded; the long runs live in tests/fuzz).

One running VTN per module (127.0.0.1, port 0, real mutual TLS), one registered fuzzing VEN.
Contract for ANY request: HTTP 200 carrying a decodable OpenADR payload -- an oadrResponse's code is
200 or 450..469 and never the transport's catch-all "internal error" (that would be a bug that
escaped a service) -- or a clean 400/404/405/408/413/415. Never a 500. And an honest VEN polling
after each example is answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Message, Poll, Response
from tests.fuzz.contract import seeds
from tests.vtn.harness import CODEC, RawVen, RunningVtn, raw_ven, running_vtn

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=(HealthCheck.function_scoped_fixture,))
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
    async with running_vtn(pki, url, rate_limit_per_s=None, body_timeout_s=2.0) as vtn, \
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


async def _post(target: Target, service: str, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    async with target.fuzzer.session.post(f"{target.vtn.url}/{service}", data=body,
                                          headers=headers) as http:
        status, raw = http.status, await http.read()
    assert status != 500 and status < 500, (status, raw[:300])
    if status != 200:
        assert status in CLEAN_HTTP, (status, raw[:300])
        return
    reply = CODEC.decode(raw)  # whatever the VTN says is a valid OpenADR payload
    if isinstance(reply, Response):
        code = reply.response.code
        assert code == 200 or 450 <= code <= 469, code
        assert INTERNAL not in (reply.response.description or ""), reply.response.description


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
