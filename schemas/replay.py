"""ReplayProtect checks: a signed message is accepted once, and only while its timestamp is fresh.

OpenADR 2.0b profile, section 10 (security): the signer puts dsp:ReplayProtect (timestamp + nonce)
under the signature. :class:`ReplayGuard` refuses a message whose timestamp is older than ``window``
or further ahead than ``max_future`` (clock skew), and one whose nonce was already seen. It runs
only after the signature verified, so a forger cannot burn nonces.

Invariants: a nonce is remembered at least as long as a message carrying it could still pass the
age check (purging drops only nonces whose timestamp is older than ``now - window``); recording is
one atomic ``seen`` call on the :class:`NonceStore`, so two workers sharing a durable store cannot
both accept the same nonce. The guard holds no module state: each codec is given its own.
"""

from __future__ import annotations

import heapq
import threading
from datetime import datetime, timedelta
from typing import Protocol

from ._errors import ReplayRefused

__all__ = ["MemoryNonceStore", "NonceStore", "ReplayGuard"]


class NonceStore(Protocol):
    """Where seen nonces live; the VTN provides a durable one shared by its workers."""

    def seen(self, nonce: str, timestamp: datetime) -> bool:
        """Atomically: True if ``nonce`` was recorded before, else record it and return False."""
        ...

    def purge(self, older_than: datetime) -> None:
        """Forget nonces whose message timestamp is before ``older_than``."""
        ...


class MemoryNonceStore:
    """A process-local :class:`NonceStore`; thread-safe, forgets everything on restart."""

    __slots__ = ("_by_nonce", "_by_time", "_lock")

    def __init__(self) -> None:
        self._by_nonce: dict[str, datetime] = {}
        self._by_time: list[tuple[datetime, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_nonce)

    def seen(self, nonce: str, timestamp: datetime) -> bool:
        with self._lock:
            if nonce in self._by_nonce:
                return True
            self._by_nonce[nonce] = timestamp
            heapq.heappush(self._by_time, (timestamp, nonce))
            return False

    def purge(self, older_than: datetime) -> None:
        with self._lock:
            while self._by_time and self._by_time[0][0] < older_than:
                _, nonce = heapq.heappop(self._by_time)
                del self._by_nonce[nonce]


class ReplayGuard:
    """Freshness window, future bound and nonce memory for ReplayProtect.

    Defaults *(config)*: a 5-minute window and 30 s of tolerated clock skew into the future.
    """

    __slots__ = ("_last_purge", "max_future", "store", "window")

    def __init__(
        self,
        *,
        window: timedelta = timedelta(minutes=5),
        max_future: timedelta = timedelta(seconds=30),
        store: NonceStore | None = None,
    ) -> None:
        if window <= timedelta(0) or max_future < timedelta(0):
            raise ValueError("window must be positive and max_future not negative")
        self.window = window
        self.max_future = max_future
        self.store: NonceStore = store if store is not None else MemoryNonceStore()
        self._last_purge: datetime | None = None

    def check(self, *, nonce: str, timestamp: datetime, now: datetime) -> None:
        """Accept (and remember) this nonce, or raise :class:`ReplayRefused` saying why."""
        age = now - timestamp
        if age > self.window:
            raise ReplayRefused(
                f"ReplayProtect timestamp {timestamp.isoformat()} is {age.total_seconds():.0f} s "
                f"old, older than the {self.window.total_seconds():.0f} s window"
            )
        if -age > self.max_future:
            raise ReplayRefused(
                f"ReplayProtect timestamp {timestamp.isoformat()} is "
                f"{-age.total_seconds():.0f} s in the future, beyond the "
                f"{self.max_future.total_seconds():.0f} s bound"
            )
        self._purge(now)
        if self.store.seen(nonce, timestamp):
            raise ReplayRefused(
                f"ReplayProtect nonce {nonce!r} was already used: the message is a replay"
            )

    def _purge(self, now: datetime) -> None:
        # Once per window is enough: entries only need to go before they could pile up.
        if self._last_purge is None or now - self._last_purge >= self.window:
            self.store.purge(now - self.window)
            self._last_purge = now
