"""Connection slots and file descriptors (vtn/site.py, vtn/connections.py, vtn/limits.py): one
certificate cannot take every connection slot, a connection drawing 429s is closed, and sockets
that never send a ClientHello are shed per source address and overall, with a log line.

The VTN is served as ``crowdflex vtn`` serves it (:func:`vtn.site.vtn_site`). Honest VENs connect
from 127.0.0.2 where a test needs them apart from the attacker's 127.0.0.1 (Linux routes all of
127.0.0.0/8 to loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from schemas import SERVICE_PREFIX, Poll, Response
from tests.kit.vtn import running_vtn
from tests.security.rawhttp import closed_by_server, request_head
from tests.vtn.harness import CODEC, RawVen
from vtn.config import ConfigError, parse_config
from vtn.settings import VtnConfig
from vtn.site import _ShedLog

GRACE_S = 5.0  # a close must come from the VTN's decision, never from this test's timeout
HANDSHAKE_S = 60.0  # far beyond GRACE_S: a close seen in time was not the handshake deadline
HONEST_ADDRESS = "127.0.0.2"


@contextlib.asynccontextmanager
async def honest_ven(url: str, context: ssl.SSLContext) -> AsyncIterator[RawVen]:
    """A registered VEN whose connections come from HONEST_ADDRESS."""
    ven = RawVen(url, context)
    await ven.session.close()
    ven.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=context, local_addr=(HONEST_ADDRESS, 0)))
    try:
        await ven.register("honest")
        await ven.drain()
        yield ven
    finally:
        await ven.close()


async def _tls(url: str, context: ssl.SSLContext
               ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port, ssl=context,
                                         server_hostname=parts.hostname)


def _close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()


async def test_one_certificate_cannot_take_every_connection_slot(pki, tmp_path: Path) -> None:
    """Tried: with max_connections = 4 and max_connections_per_peer = 2, one VEN certificate
    opens 10 connections and keeps them idle. Its 8 connections over its cap are closed unused,
    2 stay open, and another VEN still connects and is served."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}", max_connections=4,
                           max_connections_per_peer=2, rate_limit_per_s=None) as vtn:
        url, site = vtn.url, vtn.site
        assert url == f"https://127.0.0.1:{site.port}{SERVICE_PREFIX}"  # the runner's address
        hostile = pki.client_context(ven=pki.vens[1])
        opened = [await _tls(url, hostile) for _ in range(10)]
        try:
            reads = [asyncio.ensure_future(reader.read()) for reader, _ in opened]
            async with asyncio.timeout(GRACE_S):
                while sum(read.done() for read in reads) < 8:
                    await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
            assert [read.result() for read in reads if read.done()] == [b""] * 8
            assert sum(not read.done() for read in reads) == 2  # its cap: still connected
            assert site.refused == 0  # refused per certificate, not at the overall cap
            async with honest_ven(url, pki.client_context()) as honest:
                reply = await honest.poll()
                assert isinstance(reply, Response) and reply.response.code == 200
            for read in reads:
                read.cancel()
        finally:
            _close_all([writer for _, writer in opened])


async def test_a_connection_drawing_429_is_closed(pki, tmp_path: Path) -> None:
    """Tried: a VEN with a burst of 1 sends two polls on one keep-alive connection. The first is
    answered 200, the second 429 with Retry-After and ``Connection: close``, and the VTN then
    closes the connection instead of keeping the slot for it."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}", rate_limit_per_s=0.01,
                           rate_limit_burst=1) as vtn:
        url = vtn.url
        body = CODEC.encode(Poll(ven_id="whoever"))
        reader, writer = await _tls(url, pki.client_context(ven=pki.vens[1]))
        try:
            async with asyncio.timeout(GRACE_S):
                writer.write(request_head(url, "OadrPoll", len(body)) + body)
                first = await reader.readuntil(b"\r\n\r\n")
                assert first.startswith(b"HTTP/1.1 200")
                length = int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(request_head(url, "OadrPoll", len(body)) + body)
                rest = await closed_by_server(reader)  # returns only once the VTN hung up
            head = rest.split(b"\r\n\r\n")[0].lower()
            assert head.startswith(b"http/1.1 429")
            assert b"retry-after: " in head and b"connection: close" in head
        finally:
            writer.close()


async def _stalled(url: str, count: int, host: str = "127.0.0.1"
                   ) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` TCP connections to the VTN that never send a byte (no ClientHello)."""
    parts = urlsplit(url)
    return [await asyncio.open_connection(parts.hostname, parts.port, local_addr=(host, 0))
            for _ in range(count)]


async def _closed_within_grace(stalled: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
                               count: int) -> list[asyncio.Future[bytes]]:
    """Wait until ``count`` of the stalled connections were closed by the VTN; all the reads."""
    reads = [asyncio.ensure_future(reader.read()) for reader, _ in stalled]
    async with asyncio.timeout(GRACE_S):
        while sum(read.done() for read in reads) < count:
            await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
    return reads


async def test_sockets_without_client_hello_are_shed_per_source_address(
        pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Tried: 300 TCP connections from one address that never send a ClientHello, against a
    handshake deadline of a minute and at most 4 pending handshakes per address. 296 are closed
    at once (long before the deadline), 4 wait; an honest VEN from another address registers and
    polls meanwhile; the shedding is logged at WARNING."""
    caplog.set_level(logging.WARNING, logger="vtn.site")
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                           tls_handshake_timeout_s=HANDSHAKE_S,
                           max_pending_handshakes_per_address=4) as vtn:
        url, site = vtn.url, vtn.site
        stalled = await _stalled(url, 300)
        try:
            reads = await _closed_within_grace(stalled, 296)
            assert sum(not read.done() for read in reads) == 4
            assert all(read.result() == b"" for read in reads if read.done())
            assert site.pending_handshakes == 4
            async with honest_ven(url, pki.client_context()) as honest:
                reply = await honest.poll()
                assert isinstance(reply, Response) and reply.response.code == 200
            for read in reads:
                read.cancel()
        finally:
            _close_all([writer for _, writer in stalled])
    shed = [r for r in caplog.records if r.name == "vtn.site" and "shedding" in r.getMessage()]
    assert shed and shed[0].levelno == logging.WARNING
    assert "max_pending_handshakes_per_address from 127.0.0.1" in shed[0].getMessage()


async def test_sockets_over_the_overall_cap_wait_unaccepted(
        pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Tried: 8 silent connections from each of 127.0.0.3 and 127.0.0.4 against at most 10
    pending handshakes overall. 10 are accepted and wait for their ClientHello; the other 6 wait
    in the listen queue, neither accepted nor closed, and nothing is shed. Once the silent ones
    are gone, an honest VEN is served again."""
    caplog.set_level(logging.WARNING, logger="vtn.site")
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                           tls_handshake_timeout_s=HANDSHAKE_S, max_pending_handshakes=10) as vtn:
        url, site = vtn.url, vtn.site
        stalled = await _stalled(url, 8, "127.0.0.3") + await _stalled(url, 8, "127.0.0.4")
        reads = [asyncio.ensure_future(reader.read()) for reader, _ in stalled]
        try:
            async with asyncio.timeout(GRACE_S):
                while site.pending_handshakes < 10:
                    await asyncio.sleep(0)
            for _ in range(100):  # let the accept loop run: it must not take an 11th
                await asyncio.sleep(0)
            assert site.pending_handshakes == 10
            assert not any(read.done() for read in reads)  # none closed
        finally:
            for read in reads:
                read.cancel()
            _close_all([writer for _, writer in stalled])
        async with asyncio.timeout(GRACE_S):
            while site.pending_handshakes:  # the queued ones are accepted and found closed
                await asyncio.sleep(0)
        async with honest_ven(url, pki.client_context()) as honest:
            reply = await honest.poll()
            assert isinstance(reply, Response) and reply.response.code == 200
    assert not [r for r in caplog.records if r.name == "vtn.site" and "shedding" in r.getMessage()]


async def test_a_burst_larger_than_the_overall_cap_is_handshaken_in_turn(
        pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Tried: 40 VEN connections opened at once (as after a VTN restart) against at most 4
    pending handshakes. Every one completes its handshake and is answered: the 36 over the cap
    waited their turn in the listen queue instead of being closed; nothing was shed."""
    caplog.set_level(logging.WARNING, logger="vtn.site")
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                           tls_handshake_timeout_s=HANDSHAKE_S, max_pending_handshakes=4,
                           max_pending_handshakes_per_address=None,
                           max_connections_per_peer=None, rate_limit_per_s=None) as vtn:
        url = vtn.url
        body = CODEC.encode(Poll(ven_id="whoever"))
        context = pki.client_context(ven=pki.vens[1])

        async def one() -> bytes:
            reader, writer = await _tls(url, context)
            try:
                writer.write(request_head(url, "OadrPoll", len(body)) + body)
                return await reader.readuntil(b"\r\n\r\n")
            finally:
                writer.close()

        async with asyncio.timeout(GRACE_S * 6):
            heads = await asyncio.gather(*(one() for _ in range(40)))
        assert all(head.startswith(b"HTTP/1.1 200") for head in heads)
        assert vtn.site.refused == 0 and vtn.site.pending_handshakes == 0
    assert not [r for r in caplog.records if r.name == "vtn.site" and "shedding" in r.getMessage()]


async def test_a_queued_connection_its_peer_gave_up_on_gets_no_handshake(
        pki, tmp_path: Path) -> None:
    """Tried: with at most 1 pending handshake, a silent connection holds the slot while a
    second one, queued behind it, sends the start of a ClientHello and then closes its end (a VEN
    giving up). When the slot frees, the second is accepted and closed without a handshake
    (counted as abandoned); an honest VEN is served after it."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                           tls_handshake_timeout_s=HANDSHAKE_S, max_pending_handshakes=1) as vtn:
        url, site = vtn.url, vtn.site
        stalled = await _stalled(url, 1)
        try:
            async with asyncio.timeout(GRACE_S):
                while site.pending_handshakes < 1:
                    await asyncio.sleep(0)
            parts = urlsplit(url)
            quitter = socket.create_connection((parts.hostname, parts.port))
            try:
                quitter.sendall(b"\x16\x03\x01\x00\xc8\x01")  # a record header, then nothing
                quitter.shutdown(socket.SHUT_WR)
                async with asyncio.timeout(GRACE_S):  # until the VTN's kernel has our FIN
                    while _tcp_state(quitter) != _FIN_WAIT2:
                        await asyncio.sleep(0)
            finally:
                quitter.close()
        finally:
            _close_all([writer for _, writer in stalled])
        async with asyncio.timeout(GRACE_S):
            while site.abandoned < 1:
                await asyncio.sleep(0)
        assert site.abandoned == 1
        async with honest_ven(url, pki.client_context()) as honest:
            reply = await honest.poll()
            assert isinstance(reply, Response) and reply.response.code == 200


_FIN_WAIT2 = 5  # linux/tcp_states.h


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def test_the_caps_are_configurable_and_nonsense_is_refused() -> None:
    keys = {"max_connections_per_peer": 4, "max_pending_handshakes": 50,
            "max_pending_handshakes_per_address": 5, "crl_check_interval_s": 2.5}
    loaded = parse_config(keys)
    assert {key: getattr(loaded, key) for key in keys} == keys
    defaults = VtnConfig()
    assert (defaults.max_connections_per_peer, defaults.max_pending_handshakes,
            defaults.max_pending_handshakes_per_address) == (16, 1000, 64)
    for key in keys:
        for bad in (0, -1, "8", True):
            with pytest.raises(ConfigError, match=key):
                parse_config({key: bad})


def test_shedding_is_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of shed connections costs one WARNING line per interval, carrying the counts."""
    caplog.set_level(logging.WARNING, logger="vtn.site")
    now = [0.0]
    shed = _ShedLog(lambda: now[0])
    for _ in range(100):
        shed.shed("over a cap")
    now[0] = 9.9
    shed.shed("over another")
    now[0] = 10.0
    shed.shed("over a cap")
    assert [r.getMessage() for r in caplog.records if r.name == "vtn.site"] == [
        "shedding connections: 1 over a cap",
        "shedding connections: 100 over a cap, 1 over another"]
