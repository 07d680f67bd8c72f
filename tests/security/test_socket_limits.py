"""The listening socket's limits (vtn/site.py): a TLS handshake deadline and a cap on established
connections, with the VTN served as ``crowdflex vtn`` serves it (:func:`vtn.site.vtn_site`).

Each test says what it tried. The attackers hold valid client certificates where TLS is reached
(a trusted but hostile VEN), since without one the handshake already refuses them.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from schemas import Poll, Response
from tests.kit.vtn import running_vtn
from tests.security.rawhttp import connection, request_head
from tests.vtn.harness import CODEC, RawVen, raw_ven

HANDSHAKE_S = 0.5
GRACE_S = 5.0  # the close must come from the VTN's deadline, never from this test's timeout


async def _answered(url: str, pki, ven: RawVen) -> bool:
    """One poll on a fresh connection as the hostile VEN: True if the VTN answered it."""
    body = CODEC.encode(Poll(ven_id=ven.ven_id))
    async with connection(url, pki.client_context(ven=pki.vens[1])) as (reader, writer):
        writer.write(request_head(url, "OadrPoll", len(body)) + body)
        try:
            return (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return False  # closed unanswered


async def test_a_connection_that_never_handshakes_is_dropped_at_the_deadline(
        pki, tmp_path: Path) -> None:
    """Tried: 20 TCP connections that send nothing (no ClientHello) while an honest VEN polls.
    Each is closed by the VTN once tls_handshake_timeout_s has passed; the VEN is served."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}", rate_limit_per_s=None,
                           tls_handshake_timeout_s=HANDSHAKE_S) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as honest:
        await honest.register("honest")
        await honest.drain()
        parts = urlsplit(vtn.url)
        stalled = [await asyncio.open_connection(parts.hostname, parts.port) for _ in range(20)]
        try:
            async with asyncio.timeout(HANDSHAKE_S + GRACE_S):
                ends = await asyncio.gather(*(reader.read() for reader, _ in stalled))
            assert ends == [b""] * 20  # closed, nothing said
            reply = await honest.poll()
            assert isinstance(reply, Response) and reply.response.code == 200
        finally:
            for _, writer in stalled:
                writer.close()


async def test_connections_over_the_cap_are_closed_and_room_comes_back(
        pki, tmp_path: Path) -> None:
    """Tried: with max_connections = 2, the honest VEN holds one keep-alive connection and the
    hostile VEN another; a third connection sends a poll. The third is closed unanswered and
    counted as refused, the honest VEN's polls are still answered, and once the hostile VEN's
    connection is gone a new connection is served again."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}", rate_limit_per_s=None,
                           max_connections=2) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as honest:
        url, site = vtn.url, vtn.site
        await honest.register("honest")
        await honest.drain()
        body = CODEC.encode(Poll(ven_id=honest.ven_id))
        async with connection(url, pki.client_context(ven=pki.vens[1])) as (reader, writer):
            writer.write(request_head(url, "OadrPoll", len(body)) + body)
            async with asyncio.timeout(GRACE_S):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
                assert not await _answered(url, pki, honest)  # the third: over the cap
            assert site.refused == 1
            reply = await honest.poll()
            assert isinstance(reply, Response) and reply.response.code == 200
        async with asyncio.timeout(GRACE_S):
            while not await _answered(url, pki, honest):  # until the server saw the close
                pass
        assert site.refused >= 1
