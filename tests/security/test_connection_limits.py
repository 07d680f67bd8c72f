"""Connection-level limits of a served VTN (``keepalive_timeout_s``, ``max_line_size``,
``max_field_size``; vtn/app.py passes them to aiohttp's server).

Each test says what it tried, and asserts what was answered and how many bytes got through, never
how long anything took. The VTN is served as a deployment serves it (tests.kit.vtn) with a short
keep-alive so the deadline comes in about a second; the attackers hold valid client
certificates (a trusted but hostile VEN), since without one TLS already refuses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from schemas import Poll, Response
from schemas.logtext import MAX_LOGGED_CHARS
from tests.kit.vtn import RunningVtn, served_vtn, vtn_config
from tests.security.rawhttp import closed_by_server, connection, request_head
from tests.vtn.harness import CODEC, RawVen, raw_ven

KEEPALIVE_S = 1.0
PACE_S = 0.05  # a slow-headers attacker sends one header byte per PACE_S (its pace, not a sync)
# What one keep-alive period lets in at that pace, plus the bytes written while the hang-up
# travels back through the loop. The VTN and the attacker share one event loop, whose timers never
# fire early: load makes each byte take longer, so it can only lower this count, never raise it.
DEADLINE_BYTES = round(KEEPALIVE_S / PACE_S) + 4
TRICKLE_BYTES = 3000  # how many the attacker would send if nobody stopped it (150 s at its pace)
# A liveness bound, not a timing assertion: generous for a loaded 2-core machine, and far shorter
# than the attack, so a VTN that never cuts the attacker off fails here.
WAIT_S = 60.0


@dataclass
class Scene:
    vtn: RunningVtn
    honest: RawVen
    attacker_context: ssl.SSLContext


@pytest.fixture
async def scene(pki, tmp_path: Path) -> AsyncIterator[Scene]:
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                        keepalive_timeout_s=KEEPALIVE_S, max_line_size=1024,
                        max_field_size=1024, rate_limit_per_s=None)
    async with served_vtn(config) as vtn, raw_ven(vtn.url, pki.client_context()) as honest:
        await honest.register("honest")
        await honest.drain()
        yield Scene(vtn, honest, pki.client_context(ven=pki.vens[1]))


async def slow_headers(url: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    """Send a request line, then one header byte every PACE_S; (header bytes sent until the server
    hung up, what it sent)."""
    parts = urlsplit(url)
    sent = 0
    async with connection(url, context) as (reader, writer):
        writer.write(f"POST {parts.path}/OadrPoll HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode())
        hung_up = asyncio.create_task(closed_by_server(reader))

        async def trickle() -> None:
            nonlocal sent
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                for byte in b"X-Slow: ".ljust(TRICKLE_BYTES, b"a"):
                    writer.write(bytes([byte]))
                    await writer.drain()
                    sent += 1
                    await asyncio.sleep(PACE_S)

        sender = asyncio.create_task(trickle())
        try:
            async with asyncio.timeout(WAIT_S):
                received = await hung_up
            cut_at = sent
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return cut_at, received


async def test_slow_headers_clients_are_cut_off_while_honest_polls_succeed(scene: Scene) -> None:
    """Tried: 10 connections each sending a request line and then one header byte every 50 ms
    (they would go on for 150 s); meanwhile the honest VEN polls without pause. Every attacker is
    disconnected unanswered after at most one keep-alive period's worth of its bytes; every honest
    poll is answered 200."""
    answered: list[int] = []

    async def honest(stop: asyncio.Event) -> None:
        while not stop.is_set():
            reply = await scene.honest.poll()
            assert isinstance(reply, Response)
            answered.append(reply.response.code)

    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        polls = group.create_task(honest(stop))
        results = await asyncio.gather(*(slow_headers(scene.vtn.url, scene.attacker_context)
                                         for _ in range(10)))
        stop.set()
        await polls
    for sent, received in results:
        assert sent <= DEADLINE_BYTES, (sent, DEADLINE_BYTES)  # cut at the deadline, not later
        assert received == b""  # never treated as a request
    assert answered and set(answered) == {200}


async def _answered(reader: asyncio.StreamReader) -> bytes:
    """One HTTP reply off the connection: its head (the body is read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    await reader.readexactly(length)
    return head


async def test_idle_connection_is_closed_after_keepalive_timeout(scene: Scene) -> None:
    """Tried: a TLS connection that never sends a byte, and one that sends two polls back to back
    and then stays idle. The first is closed without a byte; the second has both polls answered
    on the one connection (kept alive between them), and then is closed without a third reply."""
    async with connection(scene.vtn.url, scene.attacker_context) as (reader, _writer):
        async with asyncio.timeout(WAIT_S):
            assert await closed_by_server(reader) == b""

    body = CODEC.encode(Poll(ven_id=scene.honest.ven_id))
    request = request_head(scene.vtn.url, "OadrPoll", len(body)) + body
    async with connection(scene.vtn.url, scene.attacker_context) as (reader, writer):
        async with asyncio.timeout(WAIT_S):
            heads = []
            for _ in range(2):
                writer.write(request)
                heads.append(await _answered(reader))
            assert [head.split(b" ", 2)[1] for head in heads] == [b"200", b"200"]
            assert await closed_by_server(reader) == b""  # then closed, not answered again


async def test_a_malformed_request_is_logged_on_one_capped_line(
        scene: Scene, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp's reason for a bad request target quotes the peer's bytes over several lines: the
    VTN's INFO line for it is one line, cut at MAX_LOGGED_CHARS characters of that reason."""
    caplog.set_level(logging.INFO)
    async with connection(scene.vtn.url, scene.attacker_context) as (reader, writer):
        writer.write(b"GET /" + b"a\x7f" * 300 + b" HTTP/1.1\r\n\r\n")  # 1,200 chars quoted
        async with asyncio.timeout(WAIT_S):
            received = await closed_by_server(reader)
    assert received.split(b" ", 2)[1] == b"400", received[:200]
    (line,) = [r.getMessage() for r in caplog.records if "refused with HTTP 400" in r.getMessage()]
    assert line.isprintable() and "a\\x7f" * 50 in line and "characters)" in line, line
    assert len(line) < MAX_LOGGED_CHARS + 200, len(line)


@pytest.mark.parametrize("what", ["request line", "header field"])
async def test_oversized_request_line_or_header_is_400(scene: Scene, what: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Tried: a 4 KB request target and a 4 KB header value against 1 KB limits: HTTP 400, the
    connection closed, and the honest VEN still served; the VTN logs one INFO line for it, not
    an ERROR with a traceback (an attacker must not be able to fill the logs with errors)."""
    caplog.set_level(logging.INFO)
    parts = urlsplit(scene.vtn.url)
    if what == "request line":
        head = f"POST {parts.path}/OadrPoll?{'q' * 4096} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n"
    else:
        head = (f"POST {parts.path}/OadrPoll HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"X-Big: {'b' * 4096}\r\n\r\n")
    async with connection(scene.vtn.url, scene.attacker_context) as (reader, writer):
        writer.write(head.encode())
        async with asyncio.timeout(WAIT_S):
            received = await closed_by_server(reader)
    assert received.split(b" ", 2)[1] == b"400", received[:200]  # aiohttp answers in HTTP/1.0
    reply = await scene.honest.poll()
    assert isinstance(reply, Response) and reply.response.code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    refused = [r for r in caplog.records if "refused with HTTP 400" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.INFO and not refused[0].exc_info
