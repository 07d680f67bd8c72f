"""Group commit on PostgreSQL (vtn.storage._postgres_groups): how waiting writes are grouped,
seen through a ``send`` that records each group it is handed. What the statements store is the
backend contract's (tests/vtn/test_backend_contract.py, on a real PostgreSQL database)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from vtn.storage._postgres_groups import MAX_GROUP, Groups

WAIT_S = 10.0


class Recorder:
    """Answers each write with its text upper-cased; a write "bad" fails its whole group.
    Holds every group until ``release`` is set, so that writes can queue behind it."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def send(self, group: Sequence[str]) -> list[str]:
        self.groups.append(list(group))
        await self.release.wait()
        if "bad" in group:
            raise LookupError("bad")
        return [write.upper() for write in group]


async def in_flight(groups: Groups[str, str], recorder: Recorder) -> asyncio.Future[str]:
    """Write "x" sent alone and held in flight (until ``recorder.release`` is set)."""
    recorder.release.clear()
    first = asyncio.ensure_future(groups.run("x", "x"))
    while not recorder.groups:
        await asyncio.sleep(0)
    return first


async def test_writes_waiting_together_go_in_one_group_one_per_key() -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(recorder.send)
    async with asyncio.timeout(WAIT_S):
        answers = await asyncio.gather(*(groups.run(write, key) for write, key in (
            ("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c"), ("a3", "a"))))
    assert answers == ["A1", "B1", "A2", "C1", "A3"]
    # a key's later writes wait for the next group, in their order
    assert recorder.groups == [["a1", "b1", "c1"], ["a2"], ["a3"]]


async def test_writes_arriving_while_a_group_is_sent_form_the_next_one() -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(recorder.send)
    async with asyncio.timeout(WAIT_S):
        first = await in_flight(groups, recorder)
        later = [asyncio.ensure_future(groups.run(f"w{n}", f"k{n}")) for n in range(3)]
        recorder.release.set()
        assert await first == "X"
        assert await asyncio.gather(*later) == ["W0", "W1", "W2"]
    assert recorder.groups == [["x"], ["w0", "w1", "w2"]]


async def test_a_failing_group_is_sent_again_write_by_write_and_only_the_guilty_fails() -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(recorder.send)
    async with asyncio.timeout(WAIT_S):
        answers = await asyncio.gather(groups.run("a", "a"), groups.run("bad", "b"),
                                       groups.run("c", "c"), return_exceptions=True)
    assert answers[0] == "A" and answers[2] == "C"
    assert isinstance(answers[1], LookupError)
    assert recorder.groups == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_groups_hold_at_most_max_group_writes() -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(recorder.send)
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*(groups.run(str(n), str(n)) for n in range(MAX_GROUP + 1)))
    assert [len(group) for group in recorder.groups] == [MAX_GROUP, 1]


async def test_a_write_whose_caller_was_cancelled_before_its_group_is_left_out() -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(recorder.send)
    async with asyncio.timeout(WAIT_S):
        first = await in_flight(groups, recorder)
        started: list[str] = []

        async def run(write: str) -> str:
            started.append(write)  # run() queues the write before it first waits
            return await groups.run(write, write)

        gone = asyncio.ensure_future(run("gone"))
        kept = asyncio.ensure_future(run("kept"))
        while len(started) < 2:
            await asyncio.sleep(0)
        gone.cancel()
        recorder.release.set()
        assert (await first, await kept) == ("X", "KEPT")
        with pytest.raises(asyncio.CancelledError):
            await gone
    assert recorder.groups == [["x"], ["kept"]]


async def test_a_failed_groups_writes_are_not_sent_again_for_callers_that_are_gone() -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(recorder.send)
    async with asyncio.timeout(WAIT_S):
        recorder.release.clear()
        gone = asyncio.ensure_future(groups.run("gone", "g"))
        bad = asyncio.ensure_future(groups.run("bad", "b"))
        while not recorder.groups:
            await asyncio.sleep(0)
        gone.cancel()
        recorder.release.set()
        with pytest.raises(LookupError):
            await bad
        with pytest.raises(asyncio.CancelledError):
            await gone
    assert recorder.groups == [["gone", "bad"], ["bad"]]
