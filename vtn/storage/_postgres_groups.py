"""Group commit on PostgreSQL: writes of one kind that wait together are sent as one statement,
in one transaction, with one commit.

Each commit costs PostgreSQL a WAL flush (``synchronous_commit = on``: what makes a stored write
durable before its reply goes out), about 0.2 ms of CPU and a disk flush, and each statement a
round trip the VTN's event loop pays for. Under load many VENs write at once (telemetry, a
fan-out's deliveries and acknowledgements); :class:`Groups` hands every write waiting when the
previous statement returns to one ``send(group)`` call, as :mod:`._groupcommit` does for the
SQLite writer thread. What the statement is belongs to its kind (:mod:`._postgres_reports`,
:mod:`._postgres_answers`, :mod:`._postgres_deliveries`), each with a :class:`Groups` of its own.

Invariants:
- A caller is answered only after the statement holding its write committed, with exactly what
  its write alone would answer (``send`` answers each write of the group on its own).
- A group holds at most one write per key (a VEN: another waits for the next group), so one
  statement never touches a VEN's rows twice and a VEN's writes keep their order; at most
  :data:`MAX_GROUP` writes.
- If a group's statement is refused (it rolled back), each of its writes whose caller still
  waits is sent again alone, so a failure reaches only the caller whose write caused it; a lock
  not granted in time (:class:`.records.StorageBusy`: another transaction holds one VEN's row)
  is such a refusal. If the connection was lost (:class:`.records.StorageUnavailable`), whether
  the statement committed is unknown: every caller gets the error and nothing is sent again,
  for a write that did commit would be done twice (a poll would take its VEN's next item, and
  the first would be lost).
- At most one group of a :class:`Groups` is in flight at a time; while it has none in flight a
  write goes at once.
- A write whose caller was cancelled before its group was sent is left out; one whose caller was
  cancelled while its group was in flight is committed, and its result goes to ``give_back``
  (a poll's item waits again for the VEN's next poll).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from .records import StorageBusy, StorageUnavailable

__all__ = ["MAX_GROUP", "Fetch", "Groups", "rows_by_write"]

log = logging.getLogger(__name__)

MAX_GROUP: Final = 64

W = TypeVar("W")
R = TypeVar("R")


class Fetch(Protocol):
    """One statement with its parameters, in its own transaction: all its rows (asyncpg
    Records, which the driver does not type)."""

    def __call__(self, sql: str, /, *args: object) -> Awaitable[list[Any]]: ...


def rows_by_write(rows: list[Any], count: int) -> list[list[Any]]:
    """A group's statement's rows, each of which starts with the number (from 1) of the write
    it answers, sorted out by write."""
    by_write: list[list[Any]] = [[] for _ in range(count)]
    for row in rows:
        by_write[row[0] - 1].append(row)
    return by_write


@dataclass(slots=True)
class _Waiting(Generic[W, R]):
    write: W
    key: str
    future: asyncio.Future[R]


class Groups(Generic[W, R]):
    """Sends writes through ``send(group)``, one statement that answers each write of the group
    in order (an exception for a write that failed alone after the commit: its caller gets
    it), grouped as the module docstring says; ``give_back(write, result)`` undoes what a
    committed write did for a caller that is gone."""

    def __init__(self, send: Callable[[Sequence[W]], Awaitable[Sequence[R | Exception]]],
                 give_back: Callable[[W, R], Awaitable[object]] | None = None) -> None:
        self._send_group = send
        self._give_back = give_back
        self._waiting: list[_Waiting[W, R]] = []
        self._draining: asyncio.Task[None] | None = None

    async def run(self, write: W, key: str) -> R:
        """What ``write`` answers, once the statement that holds it committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append(_Waiting(write, key, future))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group: list[_Waiting[W, R]] = []
                rest: list[_Waiting[W, R]] = []
                keys: set[str] = set()
                for waiting in self._waiting:
                    if waiting.future.done():  # its caller was cancelled
                        continue
                    if waiting.key in keys or len(group) >= MAX_GROUP:
                        rest.append(waiting)
                    else:
                        keys.add(waiting.key)
                        group.append(waiting)
                self._waiting = rest
                if group:
                    await self._send(group)
        finally:
            self._draining = None

    async def _send(self, group: list[_Waiting[W, R]]) -> None:
        try:
            results = await self._send_group([waiting.write for waiting in group])
        except Exception as exc:
            unknown = isinstance(exc, StorageUnavailable) and not isinstance(exc, StorageBusy)
            if len(group) == 1 or unknown:
                for waiting in group:
                    if not waiting.future.done():
                        waiting.future.set_exception(exc)
                return
            for waiting in group:  # alone, so only the guilty one fails
                if not waiting.future.done():
                    await self._send([waiting])
            return
        for waiting, result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                if not waiting.future.done():
                    waiting.future.set_exception(result)
            elif not waiting.future.done():
                waiting.future.set_result(result)
            elif self._give_back is not None:
                try:
                    await self._give_back(waiting.write, result)
                except Exception as exc:  # the writes waiting behind it must still be sent
                    log.warning("a cancelled caller's write was not given back: %r", exc)
