"""Failover: one of three ``crowdflex vtn`` workers killed (SIGKILL) in the middle of an event
fan-out to 1,000 VENs and of their steady telemetry (:func:`bench.failover.run`, the same
scenario ``python -m bench failover`` times).

The VENs reconnect (their requests to the dead worker fail, a new connection goes to a live
one), every VEN's acknowledgement of the event is stored, every report a VEN saw acknowledged is
stored with each of its points exactly once, and nothing a VEN saw acknowledged is missing.
Only these counts are asserted; how long the fleet took to be whole is the benchmark's figure.
"""

from __future__ import annotations

import pytest

from bench.failover import run
from tests.kit.databases import storage_url  # noqa: F401  (a fresh PostgreSQL database)

VENS = 1000


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_a_worker_killed_mid_fanout_loses_nothing(storage_url, tmp_path):  # noqa: F811
    outcome = await run(storage_url, tmp_path, vens=VENS)
    assert outcome.killed_held > 0  # the killed worker held VENs in the middle of the fan-out
    assert outcome.events_acked == VENS
    assert outcome.reports_acked >= 2 * VENS  # one before the kill and one after, each
    assert outcome.reports_missing == 0  # nothing acknowledged that was not stored
    assert outcome.points_duplicated == 0  # and nothing stored twice
