"""A lean HTTP/1.1 client for the VTN benchmark's throughput loops.

aiohttp's client spends more CPU per request than either VTN spends answering it, so a load
generator built on it measures itself: on one core it tops out near the request rates being
compared. This client writes each request as one pre-built byte string on a keep-alive mutual-TLS
connection and reads the reply by its Content-Length, which is all a VTN's answer needs.

Invariants: one request in flight per connection (no pipelining: a VEN waits for its answer;
a link's callers take turns, and :meth:`RawLink.reconnect` waits for the exchange in flight); a
reply without Content-Length, with chunked encoding or with ``Connection: close`` is read or
reconnected correctly, never mistaken for a complete one; every exchange has a deadline (a
server that accepts a request and never answers it raises TimeoutError, never hangs the VEN),
and one that outlived it is neither retried nor left half-read on its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Final

__all__ = ["RawLink"]

_HEAD_END: Final = b"\r\n\r\n"
EXCHANGE_S: Final = 60.0  # an exchange not answered by then is lost


class RawLink:
    """One VEN's keep-alive connection to ``host:port``; opened on first use. Each exchange
    (connecting, sending, reading the whole answer) has ``timeout_s``."""

    __slots__ = ("_context", "_head", "_host", "_port", "_reader", "_timeout_s", "_turn",
                 "_writer", "retries")

    def __init__(self, host: str, port: int, context: ssl.SSLContext, prefix: str, *,
                 timeout_s: float = EXCHANGE_S) -> None:
        self._host, self._port, self._context = host, port, context
        self._timeout_s = timeout_s
        self._head = (f"POST {prefix}/%s HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      "Content-Type: application/xml\r\nContent-Length: %d\r\n\r\n")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._turn = asyncio.Lock()  # one exchange at a time on the connection
        # Exchanges sent a second time on a new connection: the first try may have reached the
        # server and been acted on, though its answer never came back.
        self.retries = 0

    async def post(self, service: str, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, reply body); reconnects once if the connection failed (the server
        closed an idle connection, or died): counted in :attr:`retries`. TimeoutError when an
        exchange is not answered within the deadline (the connection is closed: the answer
        may still come, and must not be read as the next one's)."""
        request = (self._head % (service, len(body))).encode() + body
        async with self._turn:
            return await self._post(service, request)

    async def reconnect(self) -> None:
        """Close the connection once no exchange is using it: the next one makes a new
        mutual-TLS handshake, as a VEN that reconnects between two requests does."""
        async with self._turn:
            await self.close()

    async def _post(self, service: str, request: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await self._exchange(request)
            except TimeoutError:
                await self.close()
                raise TimeoutError(f"{service} to {self._host}:{self._port}: no whole answer "
                                   f"within {self._timeout_s:g} s") from None
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
                self.retries += 1
        raise AssertionError("unreachable")

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._host, self._port, ssl=self._context)
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(request)
        head = await reader.readuntil(_HEAD_END)
        status, length, chunked, close = _parse_head(head)
        if chunked:
            body = await _read_chunked(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            close = True
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, Content-Length or None, chunked, connection close) of a response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    return status, length, chunked, close
