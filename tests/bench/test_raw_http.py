"""bench._raw_http.RawLink: an exchange the server never answers raises TimeoutError naming the
service, is not retried, and leaves no half-read connection behind."""

from __future__ import annotations

import asyncio

import pytest

from bench._raw_http import RawLink
from tests.kit.pki import Pki


async def test_an_exchange_never_answered_raises_after_its_deadline_and_is_not_retried(
        pki: Pki) -> None:
    requests: list[bytes] = []
    connections = 0
    dropped = asyncio.Event()  # the link closed the connection it gave up on

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        await reader.read()  # holds the connection open without answering, until closed
        dropped.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0, ssl=pki.server_context())
    port = server.sockets[0].getsockname()[1]
    link = RawLink("127.0.0.1", port, pki.client_context(), "/p", timeout_s=0.2)
    try:
        with pytest.raises(TimeoutError, match=r"OadrPoll to 127\.0\.0\.1:\d+: no whole answer"):
            await link.post("OadrPoll", b"<poll/>")
        assert link.retries == 0 and connections == 1
        assert requests[0].startswith(b"POST /p/OadrPoll HTTP/1.1")
        async with asyncio.timeout(60):
            await dropped.wait()
    finally:
        await link.close()
        server.close()
        await server.wait_closed()


async def test_callers_of_one_link_take_turns_and_a_reconnect_waits_for_the_exchange(
        pki: Pki) -> None:
    """Two posts and a reconnect at once on one link: the server sees one request at a time on
    the first connection, each answered before the next is written, and the reconnect closes
    that connection only after the answer in flight came back (was: a reconnect could close it
    under an exchange, which then failed on the reader it had lost)."""
    heads: list[bytes] = []
    first_seen = asyncio.Event()
    answer = asyncio.Event()
    connections = 0

    async def one_at_a_time(reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            heads.append(head.split(b" ")[1])
            first_seen.set()
            await answer.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = await asyncio.start_server(one_at_a_time, "127.0.0.1", 0, ssl=pki.server_context())
    port = server.sockets[0].getsockname()[1]
    link = RawLink("127.0.0.1", port, pki.client_context(), "/p", timeout_s=30)
    try:
        first = asyncio.create_task(link.post("OadrPoll", b"<a/>"))
        async with asyncio.timeout(30):
            await first_seen.wait()
        second = asyncio.create_task(link.post("EiReport", b"<b/>"))
        reconnect = asyncio.create_task(link.reconnect())
        await asyncio.sleep(0)
        assert not reconnect.done() and heads == [b"/p/OadrPoll"]
        answer.set()
        async with asyncio.timeout(30):
            assert await first == (200, b"<a/>")
            assert await second == (200, b"<b/>")
            await reconnect
        assert heads == [b"/p/OadrPoll", b"/p/EiReport"]
        assert link.retries == 0 and connections == 1
        async with asyncio.timeout(30):
            assert await link.post("OadrPoll", b"<c/>") == (200, b"<c/>")
        assert connections == 2  # the reconnect's new handshake
    finally:
        await link.close()
        server.close()
        await server.wait_closed()
