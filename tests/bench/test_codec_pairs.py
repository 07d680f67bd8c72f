"""The codec benchmark's pairing (``bench/codec.py``): both sides' batches of a row are asked for
alternately, ABBA, and a worker answers over its pipes what its rows' batches measured."""

from __future__ import annotations

import io
import json
from typing import Any

from bench.codec import Row, _paired, _Worker, serve


class _Recorder(_Worker):
    """A worker stand-in: one row, every batch answered with ``ns``, each call logged."""

    def __init__(self, name: str, ns: float, log: list[str]) -> None:
        self.rows = {("decode", "oadrPoll"): (0, "")}
        self.name, self.ns, self.log = name, ns, log

    def ask(self, **command: Any) -> Any:
        if command.get("size"):
            return 7
        assert command == {"row": 0, "calls": 7}
        self.log.append(self.name)
        return self.ns


def test_a_rows_batches_alternate_abba_and_pair_up() -> None:
    log: list[str] = []
    ours, theirs = _Recorder("A", 10.0, log), _Recorder("B", 60.0, log)
    pairs = list(_paired(ours, theirs, ("decode", "oadrPoll"), 4, True))
    assert log == ["A", "B", "B", "A", "B", "A", "A", "B"]
    assert pairs == [(10.0, 60.0)] * 4
    log.clear()
    list(_paired(ours, theirs, ("decode", "oadrPoll"), 2, False))
    assert log == ["B", "A", "A", "B"]


def test_a_worker_lists_its_rows_then_answers_each_command() -> None:
    calls: list[int] = []

    def batch(n: int) -> float:
        calls.append(n)
        return 5.0

    commands = io.StringIO('{"row": 0, "calls": 3}\n{"row": 0, "size": true}\n')
    replies = io.StringIO()
    serve([Row(operation="decode", message="oadrPoll", batch=batch, note="n")], commands,
          replies)
    lines = replies.getvalue().splitlines()
    assert json.loads(lines[0]) == [["decode", "oadrPoll", "n"]]
    assert json.loads(lines[1]) == 5.0
    assert json.loads(lines[2]) == 4_000_000  # 20 ms over 5 ns per call
    assert calls == [3, 20, 1]  # the sizing warms up with 20 calls, then times one
