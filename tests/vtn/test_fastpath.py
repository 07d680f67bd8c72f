"""The VTN's own HTTP/1.1 path (vtn/fastpath.py): what it answers, what it hands to aiohttp, and
that both paths behave the same (limits, metrics, access log, keep-alive deadline).

The parser's choices are checked without a loop; the rest on a VTN served as a deployment serves
it, over real mutual TLS, each request sent as raw bytes in one write (one TLS record, one read on
the server), and where it matters once as a plain request (the fast path) and once with a
``Connection: keep-alive`` line (:data:`tests.security.rawhttp.TO_AIOHTTP`), which aiohttp answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from schemas import CreatePartyRegistration, Poll
from tests.kit.vtn import LoopbackVtn, RunningVtn, served_vtn, vtn_config
from tests.security.rawhttp import TO_AIOHTTP, closed_by_server, connection, request_head
from tests.vtn.harness import CODEC
from vtn.app import FAST_PATH, METRICS, create_app
from vtn.capture import capture_middleware
from vtn.fastpath import HeadLimits, _Shape, parsed
from vtn.services import Handlers
from vtn.signing import SignatureSettings

LIMITS = HeadLimits(max_line_size=8190, max_field_size=8190, max_headers=32,
                    max_body_bytes=1024)
URL = "https://vtn.example:8443/OpenADR2/Simple/2.0b"
BODY = b"<x/>"
PLAIN = request_head(URL, "OadrPoll", len(BODY)) + BODY
WAIT_S = 60.0  # a liveness bound for a loaded machine, never a timing assertion
KEEPALIVE_S = 1.0
PACE_S = 0.05  # a slow-headers client's pace (its pace, not a synchronisation)
DEADLINE_BYTES = round(KEEPALIVE_S / PACE_S) + 4  # as tests/security/test_connection_limits.py


def test_a_whole_plain_request_is_answered_here() -> None:
    request = parsed(PLAIN, LIMITS)
    assert request is not None
    assert (request.service.value, request.body) == ("OadrPoll", BODY)
    with_charset = request_head(URL, "EiEvent", len(BODY)).replace(
        b"application/xml", b"text/xml; charset=utf-8") + BODY
    assert parsed(with_charset, LIMITS) is not None


@pytest.mark.parametrize("data", [
    pytest.param(PLAIN[:20], id="partial request line"),
    pytest.param(PLAIN[:PLAIN.index(b"\r\n\r\n")], id="partial head"),
    pytest.param(PLAIN[:-1], id="partial body"),
    pytest.param(PLAIN + PLAIN, id="pipelined"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY), extra="Expect: 100-continue\r\n")
                 + BODY, id="expect"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY), extra=TO_AIOHTTP) + BODY,
                 id="connection"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY), extra="Content-Encoding: gzip\r\n")
                 + BODY, id="content-encoding"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY)).replace(
        b"Content-Length: 4", b"Transfer-Encoding: chunked") + b"4\r\n<x/>\r\n0\r\n\r\n",
                 id="chunked"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY), extra="Content-Length: 4\r\n")
                 + BODY, id="two lengths"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY), extra=" folded\r\n") + BODY,
                 id="folded line"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY), extra="X-Bad\x01: 1\r\n") + BODY,
                 id="malformed name"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY), extra="X-Bad: \x01\r\n") + BODY,
                 id="control byte"),
    pytest.param(request_head(URL, "OadrPoll", len(BODY)).replace(b"application/xml",
                                                                  b"text/plain") + BODY,
                 id="not xml"),
    pytest.param(PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0", 1), id="HTTP/1.0"),
    pytest.param(PLAIN.replace(b"OadrPoll", b"OadrPoll?x=1", 1), id="query"),
    pytest.param(PLAIN.replace(b"OadrPoll", b"Nothing", 1), id="no such service"),
    pytest.param(PLAIN.replace(b"POST", b"PUT", 1), id="other method"),
    pytest.param(request_head(URL, "OadrPoll", 2000) + b"x" * 2000, id="over the body cap"),
])
def test_anything_else_goes_to_aiohttp(data: bytes) -> None:
    """Whole, and as a repeat of a plain request's head (:class:`vtn.fastpath._Shape`)."""
    assert parsed(data, LIMITS) is None
    assert _shape_of(PLAIN).request(data, LIMITS.max_body_bytes) is None


def _shape_of(data: bytes, limits: HeadLimits = LIMITS) -> _Shape:
    request = parsed(data, limits)
    assert request is not None and request.shape is not None
    return request.shape


def test_a_head_repeated_with_another_length_is_answered_here_as_it_was_parsed() -> None:
    """The same head with another Content-Length and body: the request :func:`parsed` reads, from
    the shape of the first; a head differing anywhere else, or a length with blanks after it, is
    parsed whole."""
    shape = _shape_of(PLAIN)
    for body in (b"", b"<y/>", b"<longer-than-nine-digits/>" * 50):
        again = request_head(URL, "OadrPoll", len(body)) + body
        assert shape.request(again, LIMITS.max_body_bytes) == parsed(again, LIMITS)
    other = request_head(URL, "EiEvent", len(BODY)) + BODY
    assert shape.request(other, LIMITS.max_body_bytes) is None
    assert parsed(other, LIMITS) is not None
    blanks = PLAIN.replace(b"Content-Length: 4", b"Content-Length: 4 ")
    request = parsed(blanks, LIMITS)
    assert request is not None and request.shape is None


def test_a_repeated_head_whose_length_line_grows_past_the_field_limit_goes_to_aiohttp() -> None:
    """Header lines of at most 22 bytes: ``Content-Length: 100000`` is within, a seven-digit
    length is not, on the repeated head as on a head parsed whole."""
    tight = replace(LIMITS, max_field_size=22, max_body_bytes=2_000_000)

    def plain(length: int) -> bytes:
        return request_head(URL, "OadrPoll", length).replace(b"application/xml",
                                                             b"text/xml") + b"x" * length

    shape = _shape_of(plain(len(BODY)), tight)
    within, over = plain(100_000), plain(1_000_000)
    assert shape.request(within, tight.max_body_bytes) == parsed(within, tight) is not None
    assert shape.request(over, tight.max_body_bytes) is None
    assert parsed(over, tight) is None


@contextlib.asynccontextmanager
async def _vtn(pki, tmp_path: Path, **overrides: object) -> AsyncIterator[RunningVtn]:
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}", **overrides)
    async with served_vtn(config) as vtn:
        yield vtn


async def _replies(url: str, context: ssl.SSLContext, data: bytes, count: int
                   ) -> list[tuple[bytes, bytes]]:
    """Send ``data`` in one write; the first ``count`` final replies (head, body)."""
    replies = []
    async with connection(url, context) as (reader, writer), asyncio.timeout(WAIT_S):
        writer.write(data)
        for _ in range(count):
            replies.append(await _reply(reader))
    return replies


async def _reply(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 100 "):  # Expect: 100-continue's interim reply
        head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    return head, await reader.readexactly(length)


def _status(replies: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [head.split(b"\r\n")[0] for head, _ in replies]


def _undated(head: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", head)


def _poll(ven_id: str, extra: str = "") -> bytes:
    body = CODEC.encode(Poll(ven_id=ven_id))
    return request_head("https://127.0.0.1/OpenADR2/Simple/2.0b", "OadrPoll", len(body),
                        extra=extra) + body


def _chunked_poll(ven_id: str) -> bytes:
    body = CODEC.encode(Poll(ven_id=ven_id))
    head = request_head("https://127.0.0.1/OpenADR2/Simple/2.0b", "OadrPoll", 0)
    return (head.replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
            + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")


def _sent(vtn: RunningVtn, data: bytes) -> bytes:
    """``data`` addressed to ``vtn``'s port."""
    return data.replace(b"Host: 127.0.0.1\r\n", f"Host: {urlsplit(vtn.url).netloc}\r\n".encode())


async def test_both_paths_answer_a_plain_request_alike(pki, tmp_path: Path) -> None:
    """The same unregistered poll, answered by each path: the same bytes (but the Date)."""
    async with _vtn(pki, tmp_path) as vtn:
        fast = vtn.app[FAST_PATH]
        context = pki.client_context()
        ours = await _replies(vtn.url, context, _sent(vtn, _poll("ven-x")), 1)
        assert (fast.answered, fast.handed_over) == (1, 0)
        theirs = await _replies(vtn.url, context, _sent(vtn, _poll("ven-x", TO_AIOHTTP)), 1)
        assert (fast.answered, fast.handed_over) == (1, 1)
    assert _status(ours) == [b"HTTP/1.1 200 OK"]
    assert [(_undated(head), body) for head, body in ours] == [
        (_undated(head), body) for head, body in theirs]


@pytest.mark.parametrize(("data", "count", "status"), [
    pytest.param(b"GARBAGE\r\n\r\n", 1, b"HTTP/1.0 400 Bad Request", id="malformed"),
    pytest.param(_poll("ven-x", "Expect: 100-continue\r\n"), 1, b"HTTP/1.1 200 OK",
                 id="expect"),
    pytest.param(_poll("ven-x") + _poll("ven-x"), 2, b"HTTP/1.1 200 OK", id="pipelined"),
    pytest.param(_chunked_poll("ven-x"), 1, b"HTTP/1.1 200 OK", id="chunked"),
])
async def test_what_is_handed_over_is_answered_by_aiohttp(
        pki, tmp_path: Path, data: bytes, count: int, status: bytes) -> None:
    async with _vtn(pki, tmp_path) as vtn:
        replies = await _replies(vtn.url, pki.client_context(), _sent(vtn, data), count)
        fast = vtn.app[FAST_PATH]
        assert (fast.answered, fast.handed_over) == (0, 1)
    assert _status(replies) == [status] * count


def _counted(vtn: RunningVtn, status: str) -> float:
    text = vtn.app[METRICS].exposition().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "crowdflex_vtn_requests_total"
               and s.labels == {"service": "OadrPoll", "status": status})


@pytest.mark.parametrize("extra", [pytest.param("", id="fast"),
                                   pytest.param(TO_AIOHTTP, id="aiohttp")])
async def test_limits_and_metrics_are_the_same_on_both_paths(
        pki, tmp_path: Path, extra: str) -> None:
    """A burst of one request: the first poll is answered (counted 200), the second refused
    429 with Retry-After and the connection closed after it (counted 429)."""
    async with _vtn(pki, tmp_path, rate_limit_per_s=0.01, rate_limit_burst=1) as vtn:
        poll = _sent(vtn, _poll("ven-x", extra))
        async with connection(vtn.url, pki.client_context()) as (reader, writer):
            async with asyncio.timeout(WAIT_S):
                writer.write(poll)
                first = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(first.split(b"Content-Length: ")[1]
                                             .split(b"\r\n")[0]))
                writer.write(poll)
                rest = await closed_by_server(reader)
        assert first.startswith(b"HTTP/1.1 200 OK")
        assert rest.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
        head = rest.split(b"\r\n\r\n")[0].lower()
        assert b"retry-after: 100" in head and b"connection: close" in head
        assert (_counted(vtn, "200"), _counted(vtn, "429")) == (1.0, 1.0)


REGISTER = CODEC.encode(CreatePartyRegistration(request_id="r1", ven_name="v",
                                                http_pull_model=True))


class _HeldRegistration:
    """A registration hook that waits, once entered, until the test releases it."""

    def __init__(self) -> None:
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def on_register(self, _registration: object) -> bool:
        self.entered.set()
        await self.release.wait()
        return True


@contextlib.asynccontextmanager
async def _logging_vtn(pki, tmp_path: Path, handlers: Handlers | None = None
                       ) -> AsyncIterator[LoopbackVtn]:
    """A VTN whose runner keeps aiohttp's default access log, as :mod:`vtn.serve` serves it."""
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}")
    runner = web.AppRunner(create_app(config, handlers=handlers))
    await runner.setup()
    served = LoopbackVtn(runner=runner, config=replace(config, host="127.0.0.1"))
    try:
        await served.resume()
        yield served
    finally:
        await served.close()


async def test_the_access_log_is_the_same_on_both_paths(
        pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same poll on each path is logged once each, the same line but for the time."""
    async with _logging_vtn(pki, tmp_path) as served:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            for extra in ("", TO_AIOHTTP):
                data = _poll("ven-x", extra).replace(
                    b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\nUser-Agent: ven/1\r\n")
                await _replies(served.url + "/OpenADR2/Simple/2.0b", pki.client_context(),
                               data, 1)
    fast, theirs = [re.sub(r"\[[^]]*\]", "[time]", r.getMessage()) for r in caplog.records
                    if r.name == "aiohttp.access"]
    assert fast.startswith('127.0.0.1 [time] "POST /OpenADR2/Simple/2.0b/OadrPoll HTTP/1.1" 200 ')
    assert fast.endswith('"-" "ven/1"')
    assert fast == theirs


async def test_shutdown_waits_for_a_request_on_the_fast_path(pki, tmp_path: Path) -> None:
    """A registration whose hook is still running when the VTN shuts down: aiohttp's shutdown
    waits for it (it is counted in progress), the reply is written, then the connection closes."""
    held = _HeldRegistration()
    async with _logging_vtn(pki, tmp_path, Handlers(on_register=held.on_register)) as served:
        data = request_head(served.url + "/OpenADR2/Simple/2.0b", "EiRegisterParty",
                            len(REGISTER)) + REGISTER
        async with connection(served.url, pki.client_context()) as (reader, writer):
            async with asyncio.timeout(WAIT_S):
                writer.write(data)
                await held.entered.wait()
                shutdown = asyncio.create_task(served.close())
                server = served.runner.server
                while not server or not any(h._handler_waiter is not None
                                            for h in server.connections):
                    await asyncio.sleep(0)  # until the shutdown waits for the request
                held.release.set()
                head, _ = await _reply(reader)
                assert await closed_by_server(reader) == b""
                await shutdown
    assert head.startswith(b"HTTP/1.1 200 OK")


async def test_the_keep_alive_deadline_moves_after_each_fast_reply(pki, tmp_path: Path) -> None:
    """Polls on one connection, each after a pause shorter than the keep-alive period, for
    longer than three periods: all answered on that connection (the deadline moved after each
    reply and was held while each was answered). Then header bytes trickled one every 50 ms:
    cut off unanswered after at most one period's worth (those bytes do not move it)."""
    async with _vtn(pki, tmp_path, keepalive_timeout_s=KEEPALIVE_S) as vtn:
        poll = _sent(vtn, _poll("ven-x"))
        loop = asyncio.get_running_loop()
        async with connection(vtn.url, pki.client_context()) as (reader, writer):
            async with asyncio.timeout(WAIT_S):
                ends = loop.time() + 3 * KEEPALIVE_S
                answered = 0
                while loop.time() < ends:
                    writer.write(poll)
                    head = await reader.readuntil(b"\r\n\r\n")
                    await reader.readexactly(int(head.split(b"Content-Length: ")[1]
                                                 .split(b"\r\n")[0]))
                    answered += 1
                    await asyncio.sleep(KEEPALIVE_S / 2)  # the client's pace
                hung_up = asyncio.create_task(closed_by_server(reader))
                sent = 0
                with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                    for byte in b"POST /x HTTP/1.1\r\nX-Slow: " + b"a" * 3000:
                        if hung_up.done():
                            break
                        writer.write(bytes([byte]))
                        await writer.drain()
                        sent += 1
                        await asyncio.sleep(PACE_S)
                assert await hung_up == b""
        fast = vtn.app[FAST_PATH]
        assert (fast.answered, fast.handed_over) == (answered, 1)
    assert answered >= 6
    assert sent <= DEADLINE_BYTES


async def test_the_keep_alive_deadline_is_held_while_a_fast_request_is_answered(
        pki, tmp_path: Path) -> None:
    """A registration whose hook takes two keep-alive periods, sent at once on a new connection
    (whose deadline falls while it is answered): answered on that connection, which is then
    closed once idle (the deadline came back after the reply)."""
    held = _HeldRegistration()
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                        keepalive_timeout_s=KEEPALIVE_S)
    async with served_vtn(config, handlers=Handlers(on_register=held.on_register)) as vtn:
        data = _sent(vtn, request_head("https://127.0.0.1/OpenADR2/Simple/2.0b",
                                       "EiRegisterParty", len(REGISTER)) + REGISTER)
        async with connection(vtn.url, pki.client_context()) as (reader, writer):
            async with asyncio.timeout(WAIT_S):
                writer.write(data)
                await held.entered.wait()
                await asyncio.sleep(2 * KEEPALIVE_S)  # the hook's duration
                held.release.set()
                head, _ = await _reply(reader)
                assert await closed_by_server(reader) == b""
        assert vtn.app[FAST_PATH].answered == 1
    assert head.startswith(b"HTTP/1.1 200 OK")


def test_signatures_and_a_proxy_header_keep_a_vtn_off_the_fast_path(pki, tmp_path: Path) -> None:
    """Signed intake and a forwarded identity are the aiohttp path's alone."""
    storage = f"sqlite:///{tmp_path / 'v.db'}"
    assert FAST_PATH in create_app(vtn_config(pki, storage))
    signed = vtn_config(pki, storage, signatures=SignatureSettings(trusted=(pki.ca_cert,)))
    assert FAST_PATH not in create_app(signed)
    proxied = vtn_config(pki, storage, trusted_cert_header="X-Client-Cert",
                         trusted_proxy_addresses=("10.0.0.0/8",))
    assert FAST_PATH not in create_app(proxied)


async def test_a_middleware_of_the_host_keeps_the_vtn_off_the_fast_path(
        pki, tmp_path: Path) -> None:
    """A TSO's capture is a middleware the fast path does not do: every request is aiohttp's,
    and captured."""
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}")
    app = create_app(config)
    app.middlewares.append(capture_middleware(tmp_path / "captures"))
    served = await LoopbackVtn.start(app, config)
    try:
        replies = await _replies(served.url + "/OpenADR2/Simple/2.0b", pki.client_context(),
                                 _poll("ven-x"), 1)
    finally:
        await served.close()
    assert _status(replies) == [b"HTTP/1.1 200 OK"]
    assert (app[FAST_PATH].answered, app[FAST_PATH].handed_over) == (0, 0)
    assert sorted(p.name for p in (tmp_path / "captures").iterdir()) == [
        "000001-OadrPoll-reply.xml", "000001-OadrPoll-request.xml"]


async def test_a_request_sent_while_a_reply_is_made_is_answered_after_it(
        pki, tmp_path: Path) -> None:
    """A poll written while the registration before it is still being answered (its hook
    waits) is held, then handed to aiohttp once the registration's reply is written: both
    answered, in order, on the one connection."""
    held = _HeldRegistration()
    async with _logging_vtn(pki, tmp_path, Handlers(on_register=held.on_register)) as served:
        url = served.url + "/OpenADR2/Simple/2.0b"
        async with connection(served.url, pki.client_context()) as (reader, writer):
            async with asyncio.timeout(WAIT_S):
                writer.write(request_head(url, "EiRegisterParty", len(REGISTER)) + REGISTER)
                await held.entered.wait()
                poll = CODEC.encode(Poll(ven_id="ven-x"))
                writer.write(request_head(url, "OadrPoll", len(poll)) + poll)
                await writer.drain()
                held.release.set()
                first, second = await _reply(reader), await _reply(reader)
        fast = served.runner.app[FAST_PATH]
        assert (fast.answered, fast.handed_over) == (1, 1)
    assert b"oadrCreatedPartyRegistration" in first[1]
    assert b"oadrResponse" in second[1]
    assert _status([first, second]) == [b"HTTP/1.1 200 OK"] * 2
