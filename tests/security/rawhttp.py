"""A deliberately rude HTTP/1.1 client over mutual TLS, for what aiohttp's client will not send:
bodies that lie about their length, chunked bodies without end, bytes trickled one at a time.

Reads the reply concurrently with writing, so a server that answers early (413, 408) and closes is
seen answering, not just as a broken pipe. Everything runs under ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes


async def _read_reply(reader: asyncio.StreamReader) -> RawReply:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return RawReply(status=status, headers=headers, body=body)


async def raw_post(url: str, context: ssl.SSLContext, *, head: dict[str, str],
                   body: AsyncIterator[bytes], timeout_s: float = 20.0) -> RawReply:
    """POST to ``url`` with exactly the headers in ``head`` and the body ``body`` yields.

    Writing stops as soon as the reply has arrived or the server hung up.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port, ssl=context,
                                                       server_hostname=host)
        try:
            lines = [f"POST {parts.path} HTTP/1.1", f"Host: {host}:{port}",
                     *(f"{k}: {v}" for k, v in head.items())]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            reply = asyncio.create_task(_read_reply(reader))

            async def send() -> None:
                with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                    async for chunk in body:
                        if reply.done():
                            return
                        writer.write(chunk)
                        await writer.drain()

            sender = asyncio.create_task(send())
            try:
                return await reply
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def chunked_encoding(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """HTTP/1.1 chunked transfer coding of ``pieces`` (and the final zero chunk)."""
    async for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


async def nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


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


def request_head(url: str, service: str, length: int, *, extra: str = "") -> bytes:
    """A plain request's head; ``extra``: more header lines, each ending in CRLF."""
    parts = urlsplit(url)
    return (f"POST {parts.path}/{service} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/xml\r\nContent-Length: {length}\r\n{extra}"
            "\r\n").encode()


#: a header line that keeps a request off the VTN's own HTTP path (vtn/fastpath.py), so aiohttp
#: answers it: the same request, the other path
TO_AIOHTTP = "Connection: keep-alive\r\n"
