"""Group commit for the SQLite writer thread: write jobs that wait together commit together.

Every SQLite write transaction pays a fixed price (``BEGIN IMMEDIATE``, the WAL frames of each
touched page at ``COMMIT``, a thread hop and the wake-up of the waiting coroutine). Under
load many small writes (report batches, outbox claims, deliveries, nonces) queue for the one
writer thread; :class:`GroupCommit` runs all that are waiting when the thread gets to them in
one transaction and wakes their callers with one loop callback.

Invariants:
- A caller is answered only after the transaction holding its job committed (or with the error
  its job raised, in which case nothing of that job was kept).
- Grouping never changes what a job sees or returns: the jobs of a group run one after another
  in submission order, as they would one transaction each. If any job of a group raises, or the
  COMMIT fails, the whole group is rolled back and every job is run again alone, in order, in a
  transaction of its own; so a failure touches only the job that caused it. Jobs are therefore
  functions of the database alone (no side effects outside ``conn``), as transaction bodies are.
- A job whose caller was cancelled before the job started is skipped, as a cancelled
  ``run_in_executor`` call is.
- At most one drain runs at a time (one writer thread): SQLite never sees two of our writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar, cast

__all__ = ["GroupCommit", "settle"]

# Enough to amortise the commit; small enough that one group's lock hold stays short.
MAX_GROUP: Final = 64

_T = TypeVar("_T")


class Transaction(Protocol):
    """Runs ``body(conn)`` in one write transaction and returns what it returned."""

    def __call__(self, body: Callable[[sqlite3.Connection], _T], /) -> _T: ...


@dataclass(slots=True)
class _Job:
    work: Callable[[sqlite3.Connection], object]
    future: asyncio.Future[object]
    loop: asyncio.AbstractEventLoop
    outcome: object = None  # what work returned
    error: BaseException | None = None  # or what it raised


class GroupCommit:
    """Runs ``work(conn)`` jobs on ``executor`` (one thread) in shared write transactions.

    ``transaction(body)`` runs ``body(conn)`` in one write transaction on one of the Database's
    stdlib connections and translates driver errors (it is :meth:`Database.run_sqlite`'s own
    transaction wrapper), so a job's exception is exactly the one it would raise alone.
    """

    def __init__(self, executor: Executor, transaction: Transaction) -> None:
        self._executor = executor
        self._transaction = transaction
        self._lock = threading.Lock()
        self._pending: list[_Job] = []
        self._draining = False

    @property
    def queued(self) -> int:
        """Jobs waiting for the writer thread (not yet taken into a group)."""
        with self._lock:
            return len(self._pending)

    async def run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        loop = asyncio.get_running_loop()
        job = _Job(work, loop.create_future(), loop)
        with self._lock:
            self._pending.append(job)
            start, self._draining = not self._draining, True
        if start:
            # At the end of this loop iteration: the writes of every request this iteration
            # serves join the group, which costs them one iteration of latency at most.
            loop.call_soon(self._start)
        return cast(_T, await job.future)  # the job's outcome is what ``work`` returned

    def _start(self) -> None:
        try:
            self._executor.submit(self._drain)
        except BaseException as exc:  # e.g. the executor was shut down: nobody will drain
            with self._lock:
                group, self._pending, self._draining = self._pending, [], False
            for job in group:
                job.error = exc
            _settle(group)

    # ------------------------------------------------------------ writer thread

    def _drain(self) -> None:
        while True:
            with self._lock:
                group = self._pending[:MAX_GROUP]
                del self._pending[:MAX_GROUP]
                if not group:
                    self._draining = False
                    return
            group = [job for job in group if not job.future.cancelled()]
            if group:
                self._run_group(group)
                self._answer(group)

    def _run_group(self, group: list[_Job]) -> None:
        if len(group) > 1:
            try:
                outcomes = self._transaction(lambda conn: [job.work(conn) for job in group])
            except BaseException:  # every job is re-run alone below, and answered
                pass
            else:
                for job, outcome in zip(group, outcomes, strict=True):
                    job.outcome = outcome
                return
        for job in group:
            try:
                job.outcome = self._transaction(job.work)
            except BaseException as exc:  # handed to the job's caller
                job.error = exc

    @staticmethod
    def _answer(group: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in group:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            # RuntimeError: the loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, jobs)


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        settle(job.future, job.outcome, job.error)


def settle(future: asyncio.Future[_T], outcome: _T | None, error: BaseException | None) -> None:
    """On ``future``'s loop: what a database thread's call returned (``outcome``) or raised
    (``error``), handed to its waiting caller; nothing once the caller gave up (cancelled)."""
    if future.cancelled():
        return
    if error is None:
        future.set_result(cast(_T, outcome))  # what the call returned
    else:
        future.set_exception(error)
