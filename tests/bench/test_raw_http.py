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
