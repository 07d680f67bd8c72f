"""The demo's market timing: its ISP grid is shifted so a gate closure falls when the pool should
be ready, instead of waiting for the wall-clock minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cbp.demo.nodes import demo_settings, expected_ready
from cbp.demo.platform import _until
from cbp.market import IspCalendar


@pytest.mark.parametrize("devices", [200, 2000])
@pytest.mark.parametrize("second", [0, 17.5, 33, 59.9])
def test_the_first_gate_closure_after_readiness_comes_within_a_sample_of_the_plan(
        devices: int, second: float) -> None:
    """Started at several points of a minute: the first gate closure after the expected
    readiness plus the demo's slack (16 s) comes no more than one 4-s sample later, and the
    shifted grid still starts ISPs on the 4-s sample grid."""
    started = datetime(2026, 11, 26, 11, 15, tzinfo=UTC) + timedelta(seconds=second)
    settings = demo_settings(devices, started=started)
    rules = settings.rules
    calendar = IspCalendar(rules)
    planned = started + expected_ready(devices) + timedelta(seconds=16)
    isp = calendar.isp_at(planned)
    while calendar.isp_start(isp) - rules.gate_closure < planned:
        isp = calendar.isp_at(calendar.isp_end(isp))
    closure = calendar.isp_start(isp) - rules.gate_closure
    assert timedelta(0) <= closure - planned <= rules.sample_period
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert (calendar.isp_start(isp) - epoch) % rules.sample_period == timedelta(0)


async def test_a_step_that_never_happens_names_what_was_awaited_and_how_far_it_got() -> None:
    with pytest.raises(TimeoutError, match=r"^gave up waiting for every device's ack after "
                                           r"0\.05 s; 3 of 4 devices acknowledged$"):
        await _until(lambda: False, "every device's ack", timeout=0.05, every=0.01,
                     seen=lambda: "3 of 4 devices acknowledged")
