"""How the VTN's listener reads requests (vtn/site.py): no read allocates a read-sized buffer.

The client is a blocking TLS socket on a thread, reading 16 KiB at a time, so the only large
allocation a request could make is the server's own.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit

from schemas import Poll
from tests.kit.vtn import running_vtn
from tests.security.rawhttp import request_head
from tests.vtn.harness import CODEC
from vtn.site import _Reading

READ_MAX = 256 * 1024  # what the TLS layers read at once into a new object, for a plain protocol
TIMEOUT_S = 20.0


class _BlockingVen:
    """One keep-alive mutual-TLS connection, blocking, used from a worker thread."""

    def __init__(self, url: str, context: ssl.SSLContext) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.url = url
        raw = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S)
        self.tls = context.wrap_socket(raw, server_hostname=parts.hostname)

    def poll(self) -> bytes:
        """One oadrPoll; the reply's status line."""
        body = CODEC.encode(Poll(ven_id="whoever"))
        self.tls.sendall(request_head(self.url, "OadrPoll", len(body)) + body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += self.tls.recv(16384)
        head, _, rest = reply.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += self.tls.recv(16384)
        return head.split(b"\r\n")[0]


async def test_a_request_is_read_without_a_read_sized_allocation(pki, tmp_path: Path) -> None:
    """Tried: a connection made and a first poll answered, then three more polls on it traced
    by tracemalloc. The largest memory held at once over them stays under one 256 KiB read (a
    plain protocol behind the TLS layer allocates a 256 KiB object for every read), and every
    poll is answered."""
    async with running_vtn(pki, f"sqlite:///{tmp_path / 'vtn.db'}") as vtn:
        ven = await asyncio.to_thread(_BlockingVen, vtn.url, pki.client_context())
        try:
            assert await asyncio.to_thread(ven.poll) == b"HTTP/1.1 200 OK"
            tracemalloc.start()
            try:
                statuses = [await asyncio.to_thread(ven.poll) for _ in range(3)]
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        finally:
            ven.tls.close()
    assert statuses == [b"HTTP/1.1 200 OK"] * 3
    assert peak < READ_MAX


def test_the_read_buffer_is_shared_within_a_thread_and_not_across_threads() -> None:
    """The TLS read releases the GIL while it fills the buffer, so sites on loops in two threads
    must not share one: two connections handed over on one thread read into the same buffer,
    one handed over on another thread into its own."""
    here = [_Reading(asyncio.Protocol()) for _ in range(2)]
    there: list[_Reading] = []
    worker = threading.Thread(target=lambda: there.append(_Reading(asyncio.Protocol())))
    worker.start()
    worker.join()
    mine, theirs = (reading.get_buffer(-1) for reading in (here[0], there[0]))
    assert here[1].get_buffer(-1) is mine
    assert theirs is not mine and theirs.obj is not mine.obj
