"""Connection-level limits of a served VTN (``keepalive_timeout_s``, ``max_line_size``,
``max_field_size``; vtn/app.py passes them to aiohttp's server).

Each test says what it tried. The VTN is served as a deployment serves it (tests/security/served.py)
with a short keep-alive so the deadline is seen in about a second; the attackers hold valid client
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
from tests.security.served import config_for, served_vtn
from tests.vtn.harness import CODEC, RawVen, RunningVtn, raw_ven

KEEPALIVE_S = 1.0
# Generous: the close must come from the keep-alive deadline, never from the test's own timeout.
GRACE_S = 3.0
TRICKLE_FOR_S = 15.0  # how long a slow-headers attacker would go on if nobody stopped it


@dataclass
class Scene:
    vtn: RunningVtn
    honest: RawVen
    attacker_context: ssl.SSLContext


@pytest.fixture
async def scene(pki, tmp_path: Path) -> AsyncIterator[Scene]:
    config = config_for(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                        keepalive_timeout_s=KEEPALIVE_S, max_line_size=1024,
                        max_field_size=1024, rate_limit_per_s=None)
    async with served_vtn(config) as vtn, raw_ven(vtn.url, pki.client_context()) as honest:
        await honest.register("honest")
        await honest.drain()
        yield Scene(vtn, honest, pki.client_context(ven=pki.vens[1]))


@contextlib.asynccontextmanager
async def connection(url: str, context: ssl.SSLContext
                     ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Read until the server hangs up; everything it sent before that."""
    received = b""
    with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


def request_head(url: str, service: str, length: int) -> bytes:
    parts = urlsplit(url)
    return (f"POST {parts.path}/{service} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/xml\r\nContent-Length: {length}\r\n\r\n").encode()


async def slow_headers(url: str, context: ssl.SSLContext) -> tuple[float, bytes]:
    """Send a request line, then one header byte every 50 ms; (seconds until the server hung
    up, what it sent)."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    async with connection(url, context) as (reader, writer):
        started = loop.time()
        writer.write(f"POST {parts.path}/OadrPoll HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode())
        hung_up = asyncio.create_task(closed_by_server(reader))

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                for byte in b"X-Slow: " + b"a" * int(TRICKLE_FOR_S / 0.05):
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.05)  # the attack's pace, not synchronisation

        sender = asyncio.create_task(trickle())
        try:
            async with asyncio.timeout(KEEPALIVE_S + GRACE_S):
                received = await hung_up
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return loop.time() - started, received


async def test_slow_headers_clients_are_cut_off_while_honest_polls_succeed(scene: Scene) -> None:
    """Tried: 10 connections each sending a request line and then one header byte every 50 ms
    (they would go on for 15 s); meanwhile the honest VEN polls without pause. Every attacker is
    disconnected at the keep-alive deadline, unanswered; every honest poll is answered 200."""
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
    for elapsed, received in results:
        assert KEEPALIVE_S * 0.9 <= elapsed < KEEPALIVE_S + GRACE_S
        assert received == b""  # never treated as a request
    assert answered and set(answered) == {200}


async def test_idle_connection_is_closed_after_keepalive_timeout(scene: Scene) -> None:
    """Tried: a TLS connection that never sends a byte, and one that sends one complete poll and
    then stays idle. Both are closed by the VTN about keepalive_timeout_s later."""
    loop = asyncio.get_running_loop()
    async with connection(scene.vtn.url, scene.attacker_context) as (reader, _writer):
        started = loop.time()
        async with asyncio.timeout(KEEPALIVE_S + GRACE_S):
            assert await closed_by_server(reader) == b""
        assert loop.time() - started >= KEEPALIVE_S * 0.9

    body = CODEC.encode(Poll(ven_id=scene.honest.ven_id))
    async with connection(scene.vtn.url, scene.attacker_context) as (reader, writer):
        writer.write(request_head(scene.vtn.url, "OadrPoll", len(body)) + body)
        async with asyncio.timeout(KEEPALIVE_S + GRACE_S):
            head = await reader.readuntil(b"\r\n\r\n")
            replied = loop.time()
            assert head.startswith(b"HTTP/1.1 200")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            await reader.readexactly(length)
            assert await closed_by_server(reader) == b""  # kept alive, then closed, not answered
        assert loop.time() - replied >= KEEPALIVE_S * 0.9


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
        async with asyncio.timeout(KEEPALIVE_S + GRACE_S):
            received = await closed_by_server(reader)
    assert received.split(b" ", 2)[1] == b"400", received[:200]  # aiohttp answers in HTTP/1.0
    reply = await scene.honest.poll()
    assert isinstance(reply, Response) and reply.response.code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    refused = [r for r in caplog.records if "refused with HTTP 400" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.INFO and not refused[0].exc_info
