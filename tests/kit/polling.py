"""Draining a VEN's queue on a VTN: poll until the VTN answers oadrResponse, a bounded number of
times, so a VTN that keeps answering with messages (or with errors) fails the test that waits
for it instead of holding it for ever."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from schemas import Message, Response

__all__ = ["DRAIN_LIMIT", "drain_polls"]

DRAIN_LIMIT = 100  # polls; no test queues nearly as many messages for one VEN


async def drain_polls(poll: Callable[[], Awaitable[Message | None]], who: str, *,
                      limit: int = DRAIN_LIMIT) -> list[Message | None]:
    """Every answer of ``poll()`` up to and including the first oadrResponse; AssertionError,
    naming ``who`` and the kinds of answer seen, when none came within ``limit`` polls."""
    got: list[Message | None] = []
    while len(got) < limit:
        got.append(await poll())
        if isinstance(got[-1], Response):
            return got
    kinds = sorted({type(m).__name__ for m in got})
    raise AssertionError(f"{who}: no oadrResponse within {limit} polls; they brought {kinds}")
