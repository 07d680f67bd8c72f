"""The listening socket of a VTN: aiohttp's TCP site with the limits a public VTN needs.

The site accepts each TCP connection itself and has its TLS handshake run
(``loop.connect_accepted_socket``), so it sees a connection from its accept to the moment it is
handed to aiohttp:

- **Pending handshakes** *(config: ``max_pending_handshakes``,
  ``max_pending_handshakes_per_address``)*: while ``max_pending_handshakes`` handshakes are in
  progress the site accepts nothing more: further connections wait in the kernel's listen queue
  (costing the process no descriptor and no handshake work) and are accepted, in order, as
  handshakes finish. So a burst of VENs larger than the cap (all of them reconnecting after a
  restart) is handshaken a slice at a time, each handshake done well inside its deadline, instead
  of all at once, most of them past it and redone. A connection accepted while its source
  address has ``max_pending_handshakes_per_address`` in progress is closed at once, so one
  address's sockets that never send a ClientHello cannot fill the overall slots; shedding is
  logged (one WARNING line per ``_SHED_LOG_INTERVAL_S`` at most, with the counts since the last).
- **TLS handshake deadline** *(config: ``tls_handshake_timeout_s``)*: a peer that has not
  finished its handshake this long after it was accepted is dropped (time spent in the listen
  queue does not count). A connection whose peer already closed its end while it waited in the
  queue (it gave up) is closed when accepted, without a handshake's work (Linux: the TCP state).
- **Open-connection cap** *(config: ``max_connections``)*: with that many established
  connections, a new one is closed as soon as its handshake completes, before any HTTP is read.
  VENs keep their connection alive (docs/architecture.md#where-the-time-goes), so the cap is on
  VENs connected at once, not on request rate (that is :mod:`vtn.limits`).
- **Per-certificate cap** *(config: ``max_connections_per_peer``)*: checked at the same moment by
  :class:`vtn.connections.Connections` (which also refuses a resumed session of a revoked
  certificate), which also lets the application close a VEN's connections.
- **File descriptors**: at start the soft ``RLIMIT_NOFILE`` is raised towards what the caps
  need (``max_connections`` + ``max_pending_handshakes`` + ``DESCRIPTOR_HEADROOM``), never above
  the hard limit; if the hard limit is lower, an ERROR says so and by how much.
- **Memory per connection**: the peer certificate the event loop decoded to a dict at the
  handshake is emptied at the hand-over (``get_extra_info("peercert")`` is then empty; the
  certificate stays readable from the ``ssl_object``).

Each handed-over connection reads through :class:`_Reading`: the TLS layer decrypts into one
buffer shared by every connection served from the same thread (a buffer per thread: the TLS read
releases the GIL, so two sites on loops in two threads must not share one) and the HTTP layer
gets a copy of just the bytes read: the app's own HTTP/1.1 path for plain requests when it has one
that serves it (:mod:`vtn.fastpath`, which hands the rest to aiohttp's protocol), else aiohttp's
protocol. Given aiohttp's protocol itself, uvloop (and asyncio's TLS)
read each record with ``SSLObject.read(256 KiB)``, a fresh 256 KiB object per read: an ``mmap``,
page faults, an ``mremap`` and a ``munmap`` per request on glibc (measured: 16.7 against 2.9 us
per read).

Invariants: nothing here parses a request; a refused connection never reaches the application;
every handshake task is owned by the site and cancelled when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from vtn.app import CONNECTIONS, FAST_PATH, server_ssl_context
from vtn.connections import Connections
from vtn.fastpath import FastConnection, FastPath
from vtn.settings import VtnConfig

__all__ = ["DESCRIPTOR_HEADROOM", "SiteLimits", "VtnSite", "raise_descriptor_limit", "vtn_site"]

log = logging.getLogger(__name__)

# Descriptors the process needs beyond its connections: database files, the admin port, push
# client sockets, logs.
DESCRIPTOR_HEADROOM = 256
_SHED_LOG_INTERVAL_S = 10.0
_ACCEPT_RETRY_S = 0.5  # after a failed accept (out of descriptors), as asyncio's own server
_TCP_CLOSE_WAIT = 8  # linux/tcp_states.h: the peer sent its FIN


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteLimits:
    """The listening socket's limits; None switches a cap off."""

    handshake_timeout_s: float = 10.0
    max_connections: int | None = 10_000
    max_pending_handshakes: int | None = 1000
    max_pending_per_address: int | None = 64

    def descriptors_needed(self) -> int | None:
        if self.max_connections is None or self.max_pending_handshakes is None:
            return None
        return self.max_connections + self.max_pending_handshakes + DESCRIPTOR_HEADROOM


def raise_descriptor_limit(needed: int | None) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to ``needed`` (None: to the hard limit), never above the
    hard limit; the soft limit now in force. Logs an ERROR when it stays below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if needed is None else needed
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and (wanted == resource.RLIM_INFINITY or soft < wanted):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    if needed is not None and soft != resource.RLIM_INFINITY and soft < needed:
        log.error("open-file limit %d is below the %d the connection caps need "
                  "(max_connections + max_pending_handshakes + %d): connections will fail "
                  "before the caps refuse them; raise the hard limit (ulimit -Hn, systemd "
                  "LimitNOFILE=) or lower max_connections", soft, needed, DESCRIPTOR_HEADROOM)
    return soft


class _ShedLog:
    """Counts shed connections by reason; logs them at most once per interval."""

    __slots__ = ("_clock", "_counts", "_next_at")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._next_at = float("-inf")

    def shed(self, reason: str) -> None:
        self._counts[reason] += 1
        now = self._clock()
        if now >= self._next_at:
            summary = ", ".join(f"{n} {why}" for why, n in sorted(self._counts.items()))
            log.warning("shedding connections: %s", summary)
            self._counts.clear()
            self._next_at = now + _SHED_LOG_INTERVAL_S


class _Held(asyncio.Protocol):
    """The protocol of a connection from the end of its handshake to its hand-over: keeps what
    arrives meanwhile (bytes that followed the handshake at once, an end of file, a loss)."""

    __slots__ = ("data", "eof", "lost")

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> None:
        self.eof = True  # over TLS the transport closes after this whatever we answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


_READ_BUFFER_BYTES = 64 * 1024  # a TLS record is at most 16 KiB; a fuller read is resumed
_READ_BUFFERS = threading.local()  # .view: the read buffer of the thread's connections


def _read_view() -> memoryview:
    """The read buffer of the calling thread's connections (made at its first one)."""
    view: memoryview | None = getattr(_READ_BUFFERS, "view", None)
    if view is None:
        view = _READ_BUFFERS.view = memoryview(bytearray(_READ_BUFFER_BYTES))
    return view


class _Reading(asyncio.BufferedProtocol):
    """aiohttp's protocol behind a buffered read: the TLS layer decrypts into the buffer of the
    thread the connection was handed over on (:func:`_read_view`) and :meth:`buffer_updated`
    passes a copy of the bytes on at once, so no connection keeps a read buffer of its own and no
    read allocates one (the buffer is shared by that thread's connections: it is filled and
    emptied inside one call of the loop). With the app's fast path (:mod:`vtn.fastpath`) the
    bytes go to it, which answers plain requests and hands the rest to aiohttp's protocol."""

    __slots__ = ("_handler", "_view", "receive")

    def __init__(self, handler: asyncio.Protocol, fast: FastConnection | None = None) -> None:
        self._handler = handler
        self.receive = handler.data_received if fast is None else fast.data_received
        self._view = _read_view()  # the loop's thread, whose every read fills and empties it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._handler.connection_made(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.receive(bytes(self._view[:nbytes]))

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()


class VtnSite(web.TCPSite):
    """``web.TCPSite`` plus the limits of :class:`SiteLimits` and :class:`Connections`.

    It accepts connections itself (``loop.sock_accept``), so the source address is known before
    any handshake work, and has each handshake done by ``loop.connect_accepted_socket``.
    """

    __slots__ = ("_connections", "_fast", "_in_progress", "_limits", "_pending", "_shed",
                 "_slot_freed", "_tasks", "abandoned", "refused")

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *,
                 ssl_context: ssl.SSLContext, limits: SiteLimits = SiteLimits(),
                 connections: Connections | None = None, backlog: int = 1024,
                 reuse_port: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # reuse_port: SO_REUSEPORT, so worker processes share the port (crowdflex vtn --workers)
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog,
                         reuse_port=reuse_port)
        self._limits = limits
        self._connections = connections or Connections(per_peer=None)
        self._pending: Counter[str] = Counter()  # handshakes in progress by source address
        self._in_progress = 0  # ... and overall
        self._slot_freed = asyncio.Event()  # set when a handshake ends
        self._tasks: set[asyncio.Task[None]] = set()
        self._shed = _ShedLog(clock)
        self.refused = 0  # connections closed at the connection cap, for operators and tests
        self.abandoned = 0  # connections found closed by their peer when accepted
        self._fast: FastPath | None = None  # set at start, once the app is frozen

    @property
    def pending_handshakes(self) -> int:
        return self._in_progress

    async def start(self) -> None:
        self._runner._reg_site(self)
        raise_descriptor_limit(self._limits.descriptors_needed())
        if isinstance(self._runner, web.AppRunner):
            fast = self._runner.app.get(FAST_PATH)
            self._fast = fast if fast is not None and fast.serves(self._runner.app) else None
        listener = socket.create_server((self._host or "0.0.0.0", self._port),
                                        backlog=self._backlog, reuse_port=bool(self._reuse_port))
        listener.setblocking(False)
        self._bound_port = listener.getsockname()[1]
        accepting = asyncio.get_running_loop().create_task(self._accept(listener))
        self._server = _Listening(listener, accepting)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await super().stop()  # closes the listener (_Listening.close)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        cap = self._limits.max_pending_handshakes
        while True:
            while cap is not None and self.pending_handshakes >= cap:
                self._slot_freed.clear()  # the rest wait in the listen queue, unaccepted
                await self._slot_freed.wait()
            try:
                conn, peer = await loop.sock_accept(listener)
            except OSError as exc:  # EMFILE and kin: the caps below were not enough
                self._shed.shed(f"accept failed ({exc.strerror})")
                await asyncio.sleep(_ACCEPT_RETRY_S)
                continue
            if _peer_closed(conn):
                self.abandoned += 1
                conn.close()
                continue
            address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            reason = self._over_pending(address)
            if reason is not None:
                self._shed.shed(reason)
                conn.close()
                continue
            self._pending[address] += 1
            self._in_progress += 1
            task = loop.create_task(self._handshake(conn, address))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _over_pending(self, address: str) -> str | None:
        cap = self._limits.max_pending_per_address
        if cap is not None and self._pending[address] >= cap:
            return f"over max_pending_handshakes_per_address from {address}"
        return None

    async def _handshake(self, conn: socket.socket, address: str) -> None:
        held = _Held()  # uvloop returns its SSL protocol here, not ours: keep our own reference
        try:
            tls, _ = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: held, conn, ssl=self._ssl_context,
                ssl_handshake_timeout=self._limits.handshake_timeout_s)
        except (OSError, RuntimeError):  # refused, timed out, or gone during the handshake
            conn.close()
            return
        finally:
            self._pending[address] -= 1
            if self._pending[address] <= 0:
                del self._pending[address]
            self._in_progress -= 1
            self._slot_freed.set()
        if held.lost:
            return
        try:
            if self._admit(tls):
                self._hand_over(tls, held)
                return
        except Exception:
            log.exception("connection from %s dropped after its handshake", address)
        tls.close()

    def _admit(self, tls: asyncio.BaseTransport) -> bool:
        server = self._runner.server
        assert server is not None
        cap = self._limits.max_connections
        if cap is not None and len(server.connections) >= cap:
            self.refused += 1
            self._shed.shed("over max_connections")
            return False
        refused = self._connections.admit(tls)
        if refused is not None:
            self._shed.shed(refused)
            return False
        return True

    def _hand_over(self, tls: asyncio.BaseTransport, held: _Held) -> None:
        server = self._runner.server
        assert server is not None
        _forget_decoded_certificate(tls)
        handler = server()
        fast = (self._fast.connection(handler, cast(asyncio.Transport, tls))
                if self._fast is not None else None)
        reading = _Reading(handler, fast)
        tls.set_protocol(reading)
        handler.connection_made(tls)
        for chunk in held.data:
            reading.receive(chunk)
        if held.eof:
            handler.eof_received()


def _forget_decoded_certificate(tls: asyncio.BaseTransport) -> None:
    """Empty the peer certificate the event loop decoded to a dict at the handshake and keeps for
    the connection's life (``get_extra_info("peercert")``; ~1.5 KB per connection, in uvloop and
    asyncio alike). Nothing here reads it: identity, revocation and capture read the certificate's
    DER from the ``ssl_object``. The loop hands out the dict it keeps, so emptying that dict frees
    its contents; ``tests/vtn/test_idle_connection.py`` fails if a loop ever hands out a copy."""
    decoded = tls.get_extra_info("peercert")
    if isinstance(decoded, dict):
        decoded.clear()


def _peer_closed(conn: socket.socket) -> bool:
    """Whether the peer has closed its end already (False where TCP_INFO is not offered)."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return False
    try:
        return conn.getsockopt(socket.IPPROTO_TCP, tcp_info, 1)[0] == _TCP_CLOSE_WAIT
    except OSError:
        return False


class _Listening(asyncio.AbstractServer):
    """What aiohttp's runner knows of a site's server (``sockets``, ``close``): the listening
    socket and the task accepting on it."""

    def __init__(self, listener: socket.socket, accepting: asyncio.Task[None]) -> None:
        self._listener = listener
        self._accepting = accepting

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._listener.fileno() < 0 else (self._listener,)

    def close(self) -> None:
        self._accepting.cancel()
        self._listener.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._accepting.get_loop()

    def is_serving(self) -> bool:
        return not self._accepting.done()

    async def start_serving(self) -> None:
        """Serving began with the site."""

    async def serve_forever(self) -> None:
        await self.wait_closed()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._accepting


def vtn_site(runner: web.AppRunner, config: VtnConfig, *, backlog: int = 1024,
             reuse_port: bool = False) -> VtnSite:
    """The mutual-TLS site for ``config`` (host, port, certificates and every limit), admitting
    connections to the app's :data:`vtn.app.CONNECTIONS`; ``backlog`` is the listen queue for
    connections not yet accepted; ``reuse_port`` binds with SO_REUSEPORT (``crowdflex vtn
    --workers``)."""
    limits = SiteLimits(handshake_timeout_s=config.tls_handshake_timeout_s,
                        max_connections=config.max_connections,
                        max_pending_handshakes=config.max_pending_handshakes,
                        max_pending_per_address=config.max_pending_handshakes_per_address)
    return VtnSite(runner, config.host, config.port, ssl_context=server_ssl_context(config),
                   limits=limits, connections=runner.app[CONNECTIONS], backlog=backlog,
                   reuse_port=reuse_port)
