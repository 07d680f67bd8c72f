"""Exponential back-off with jitter for retrying an unreachable VTN.

Delay for attempt ``n`` (0-based): ``min(cap, base * factor**n)``, scaled by a random factor in
``[1 - jitter, 1]`` ("equal jitter" when ``jitter`` is 0.5): the ceiling grows geometrically so a
long outage costs few requests, and the random spread keeps a fleet of VENs that lost the same VTN
from reconnecting in lock-step when it returns. ``random`` is injected so tests are exact.

A VTN that answers HTTP 429 or 503 with Retry-After (RFC 9110 section 10.2.3) is waited on for at
least that long (:meth:`Backoff.delay_after`), but never beyond ``cap``: a hostile or misconfigured
VTN must not be able to silence a VEN for a day with one header.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Seconds to wait before retry ``attempt``; ``random()`` returns a float in [0, 1)."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.5
    random: Callable[[], float] = field(default=_random.random, compare=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base:
            raise ValueError("need base > 0, factor >= 1 and cap >= base")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction in [0, 1]")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay for ``attempt``; grows until it reaches ``cap``."""
        # Compare exponents instead of computing factor**attempt, which overflows for long outages.
        if attempt > 0 and self.factor > 1:
            steps_to_cap = 0
            value = self.base
            while value < self.cap and steps_to_cap < attempt:
                value *= self.factor
                steps_to_cap += 1
            return min(self.cap, value)
        return self.base

    def delay(self, attempt: int) -> float:
        return self.ceiling(attempt) * (1.0 - self.jitter * self.random())

    def delay_after(self, attempt: int, retry_after: float | None) -> float:
        """:meth:`delay`, but at least ``retry_after`` seconds (the VTN's ask), up to ``cap``.

        The wait is spread up to ``jitter / 2`` above ``retry_after``: a fleet refused together
        with the same Retry-After must not come back in the same instant.
        """
        backoff = self.delay(attempt)
        if retry_after is None:
            return backoff
        asked = max(0.0, retry_after) * (1.0 + self.jitter * self.random() / 2)
        return max(backoff, min(self.cap, asked))
