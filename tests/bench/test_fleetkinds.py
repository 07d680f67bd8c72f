"""bench.fleetkinds: with ``--spacing-ms`` each measured request waits that long after the reply
before it is sent, one in flight, as a fleet's requests arrive apart."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from bench import fleetkinds
from bench.fleetkinds import _each


async def test_each_sends_one_in_flight_and_pauses_the_spacing_after_every_reply() -> None:
    sent: list[tuple[str, float]] = []
    in_flight = 0

    async def send(device: Any) -> bytes:
        nonlocal in_flight
        in_flight += 1
        assert in_flight == 1
        sent.append((device, time.monotonic()))
        in_flight -= 1
        return b"HTTP/1.1 200 OK\r\n\r\n"

    errors: list[str] = []
    started = time.monotonic()
    await _each(["a", "b", "c"], send, errors, 0.05)  # type: ignore[list-item]
    ended = time.monotonic()
    assert [device for device, _ in sent] == ["a", "b", "c"] and not errors
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(sent)]
    assert min(gaps) >= 0.05, gaps
    assert ended - sent[-1][1] >= 0.05  # after the last reply too: each request is spaced alike
    assert ended - started >= 0.15


async def test_each_without_spacing_sends_back_to_back(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def send(device: Any) -> bytes:
        return b"HTTP/1.1 200 OK\r\n\r\n"

    monkeypatch.setattr(fleetkinds.asyncio, "sleep", sleep)
    await _each(["a", "b"], send, [])  # type: ignore[list-item]
    assert slept == []
