"""The PostgreSQL backend's pooled connections when the server ends them (vtn.storage.
_postgres_backend): a terminated backend sends its last error, then closes the socket. Between
the two, a pooled connection has read the error while idle and asyncpg has put its protocol in a
state no query can start from; a query on it must come out as StorageUnavailable (the VEN's
request answers 503 and is retried), not as a bug. A proxy on loopback holds back the close."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from tests.kit.databases import fresh_postgres_database
from vtn.storage import StorageUnavailable, open_storage
from vtn.storage._postgres_backend import POOL_SIZE, PostgresBackend

WAIT_S = 10.0


class HeldClose:
    """TCP from loopback to ``upstream``: bytes pass at once both ways, but the server's end of
    a connection is passed on only once ``let_close`` is set; ``ended`` counts those held."""

    def __init__(self, upstream: URL) -> None:
        self.upstream = upstream
        self.let_close = asyncio.Event()
        self.ended = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(
            self.upstream.host, self.upstream.port or 5432)
        async with asyncio.TaskGroup() as pipes:
            pipes.create_task(self._pipe(client_in, server_out, held=False))
            pipes.create_task(self._pipe(server_in, client_out, held=True))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *,
                    held: bool) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if held:
            self.ended += 1
            await self.let_close.wait()
        sink.close()


def unread(conn: asyncpg.Connection) -> bool:
    """Whether bytes wait in ``conn``'s socket that asyncpg has not read yet."""
    seen = conn._transport.get_extra_info("socket")  # no public way to see it
    with socket.fromfd(seen.fileno(), seen.family, seen.type) as sock:
        try:
            return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[PostgresBackend, HeldClose, asyncpg.Connection]]:
    """The backend on a fresh, migrated database through :class:`HeldClose`, and a connection of
    the test's own (direct)."""
    async for url in fresh_postgres_database():
        await (await open_storage(url)).close()  # migrated
        direct = make_url(url)
        proxy = HeldClose(direct)
        port = await proxy.start()
        backend = await PostgresBackend.open(
            direct.set(host="127.0.0.1", port=port),
            lambda *, write, seconds: None, lambda seconds: None)
        own = await asyncpg.connect(direct.set(drivername="postgresql").render_as_string(
            hide_password=False))
        try:
            yield backend, proxy, own
        finally:
            proxy.let_close.set()
            await own.close()
            await backend.close()
            assert proxy.server is not None
            proxy.server.close()


async def test_a_pooled_connection_the_server_ended_answers_unavailable(
        proxied: tuple[PostgresBackend, HeldClose, asyncpg.Connection]) -> None:
    backend, proxy, own = proxied
    async with asyncio.timeout(WAIT_S):
        await own.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        while proxy.ended < POOL_SIZE:  # every pooled connection got its server's last error
            await asyncio.sleep(0.01)
        held = [await backend.pool.acquire() for _ in range(POOL_SIZE)]
        pooled = [conn._con for conn in held]  # what the pool proxies stand for
        while any(unread(conn) for conn in pooled):
            await asyncio.sleep(0.01)  # asyncpg reads it on its next pass of the loop
        for conn in held:
            await backend.pool.release(conn)
        with pytest.raises(StorageUnavailable):
            await backend.poll_lookup("FP:none")
        proxy.let_close.set()
        while not all(conn.is_closed() for conn in pooled):
            await asyncio.sleep(0.01)
        # the pool opens new connections in their place
        assert await backend.poll_lookup("FP:none") == (None, False)
