"""vtn.transport's reading of a request body: what an idle keep-alive connection keeps of it."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit

from tests.kit.vtn import running_vtn
from tests.security.rawhttp import request_head

BODY_BYTES = 600_000


async def test_an_idle_connection_keeps_nothing_of_its_last_request_body(
        pki, tmp_path: Path) -> None:
    """Tried: a 600 KB body posted on a keep-alive connection, answered, the connection then
    left open and idle. What the process still holds that was allocated since the request is far
    below the body's size: nothing keeps the body once it was answered (``request.read()`` kept
    it on the request, which aiohttp holds until the connection's next request)."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}") as vtn:
        parts = urlsplit(vtn.url)
        reader, writer = await asyncio.open_connection(
            parts.hostname, parts.port, ssl=pki.client_context(), server_hostname=parts.hostname)
        request = request_head(vtn.url, "OadrPoll", BODY_BYTES) + b" " * BODY_BYTES
        tracemalloc.start()
        try:
            async with asyncio.timeout(30):
                writer.write(request)
                del request
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200")  # answered (an oadrResponse refusing it)
            gc.collect()
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            writer.close()
        assert held < BODY_BYTES // 4, held
