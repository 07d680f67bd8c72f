"""PostgreSQL LISTEN/NOTIFY: what one worker commits, every worker's poll index hears.

Several VTN workers share one PostgreSQL database. Each keeps a :class:`PollIndex` so a quiet
VEN's poll is answered without a database read, as on SQLite; what keeps it true is this module:

- Every transaction that queues outbox items or writes a registration also sends a notification
  (the PostgreSQL backend's enqueues and event writes on :data:`OUTBOX_CHANNEL` with
  :func:`enqueued_payload`; :func:`notify_registrations`) *inside that transaction*: PostgreSQL
  delivers it when, and only when, the transaction commits, to every listening connection.
- Each Storage on PostgreSQL runs one :class:`Listener`: a dedicated asyncpg connection that
  LISTENs on both channels and tells the index (``enqueued``, ``registration_changed``).
  It also hears its own probes (:meth:`Listener.lag`), which measure how long a notification
  takes from commit to this worker.

Invariants: the index is live only while the listening connection is. It starts suspended; it
resumes (from nothing) only after LISTEN succeeded, so nothing committed afterwards can go
unheard; when the connection is lost (PostgreSQL restarted, the backend terminated, the network)
it is suspended at once, every poll reads the database, and the listener reconnects every
:data:`RECONNECT_S` until it can resume. A notification that arrives is applied on the event
loop, after the commit it reports, exactly as the worker's own writes are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Final

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from .pollindex import PollIndex

__all__ = ["EVERYONE", "OUTBOX_CHANNEL", "PROBE_CHANNEL", "RECONNECT_S", "VENS_CHANNEL",
           "Listener", "enqueued_payload", "notify_registrations"]

log = logging.getLogger(__name__)

OUTBOX_CHANNEL: Final = "crowdflex_outbox"
VENS_CHANNEL: Final = "crowdflex_vens"
#: a worker's probe of its own notification lag (:meth:`Listener.lag`); others ignore it
PROBE_CHANNEL: Final = "crowdflex_probe"
#: the payload that means "items for VENs too many to name"
EVERYONE: Final = "*"
#: PostgreSQL refuses a payload of 8,000 bytes or more; beyond this, send EVERYONE
MAX_PAYLOAD_BYTES: Final = 7_000
#: how long the listener waits before it tries to connect again
RECONNECT_S: Final = 1.0
_CONNECT_TIMEOUT_S: Final = 10.0

_NOTIFY: Final = text("SELECT pg_notify(:channel, :payload)")


def enqueued_payload(ven_ids: Sequence[str]) -> str:
    """The VEN IDs one per line, or :data:`EVERYONE` when they would not fit a notification
    (or one of them holds a line break)."""
    payload = "\n".join(ven_ids)
    if len(payload.encode()) > MAX_PAYLOAD_BYTES or any("\n" in v for v in ven_ids):
        return EVERYONE
    return payload


def notify_registrations(conn: Connection, fingerprint: str) -> None:
    """Inside a transaction that writes the registration of the certificate ``fingerprint``:
    every worker forgets that one, on commit."""
    conn.execute(_NOTIFY, {"channel": VENS_CHANNEL, "payload": fingerprint})


class Listener:
    """Keeps ``index`` live while a LISTEN connection to ``url`` is; owned by the Storage."""

    def __init__(self, url: URL, index: PollIndex) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._index = index
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.backend_pid: int | None = None  # the listening connection's PostgreSQL backend
        self.connections = 0  # times LISTEN was established (a reconnect adds one)
        self.losses = 0  # times the listening connection was lost
        self.heard = 0  # notifications applied to the index
        self._probes: dict[str, asyncio.Future[float]] = {}  # token -> when it was heard

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds (checked after every change of the figures)."""
        while not condition():
            await self._changed.wait()

    async def lag(self, engine: AsyncEngine) -> float | None:
        """Seconds from asking PostgreSQL to commit a notification to hearing it here: a
        probe sent through ``engine``'s pool, the way other workers' changes come (None while
        not listening). Bound it with a timeout: a lost notification is never heard."""
        if self.backend_pid is None:
            return None
        token = secrets.token_hex(8)
        heard: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._probes[token] = heard
        try:
            async with engine.connect() as conn:
                await conn.execute(_NOTIFY, {"channel": PROBE_CHANNEL, "payload": token})
                asked = perf_counter()
                await conn.commit()
            return max(0.0, await heard - asked)
        finally:
            del self._probes[token]

    def _moved(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="crowdflex-pg-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._index.suspend()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except (OSError, TimeoutError, asyncpg.PostgresError,
                    asyncpg.InterfaceError) as exc:
                log.warning("PostgreSQL notifications unavailable (%r); polls read the "
                            "database until they are back", exc)
            except Exception:  # a bug must not end listening for good: the index stays safe
                log.exception("PostgreSQL notification listener failed; retrying")
            finally:
                self._index.suspend()
                self.backend_pid = None
            await asyncio.sleep(RECONNECT_S)  # reconnect back-off

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=_CONNECT_TIMEOUT_S)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(OUTBOX_CHANNEL, self._on_outbox)
            await conn.add_listener(VENS_CHANNEL, self._on_vens)
            await conn.add_listener(PROBE_CHANNEL, self._on_probe)
            self.backend_pid = conn.get_server_pid()
            self._index.resume()  # LISTEN is active: from here on, nothing goes unheard
            self.connections += 1
            self._moved()
            await lost.wait()
            log.warning("PostgreSQL notification connection lost")
        finally:
            self._index.suspend()
            if not conn.is_closed():
                conn.terminate()
            if self.backend_pid is not None:
                self.losses += 1
                self._moved()

    def _on_outbox(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        text_payload = str(payload)
        if text_payload == EVERYONE:
            self._index.everyone_enqueued()
        else:
            self._index.enqueued(text_payload.split("\n"))
        self.heard += 1
        self._moved()

    def _on_probe(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        heard = self._probes.get(str(payload))
        if heard is not None and not heard.done():
            heard.set_result(perf_counter())

    def _on_vens(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self._index.registration_changed(str(payload))
        self.heard += 1
        self._moved()
