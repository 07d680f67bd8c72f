"""The sample grid's one definition (cbp.market.series): whole periods since the Unix epoch, in
UTC whatever an instant's zone. ``grid_index`` numbers the point at or before an instant,
``snap`` takes the nearest point, ``on_grid`` says whether an instant is one, and a device's
next sample (``next_grid``) is the point after the one ``grid_index`` numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from cbp.market import grid_index, on_grid, snap
from cbp.roles.device import next_grid

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the oracle, written out apart from the code's
PERIODS = st.sampled_from([timedelta(seconds=s) for s in (1, 4, 15, 60, 900, 3600)])
INSTANTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                        timezones=st.sampled_from([UTC, ZoneInfo("Europe/Berlin"),
                                                   ZoneInfo("America/St_Johns")]))


@given(INSTANTS, PERIODS)
def test_grid_index_numbers_the_point_at_or_before_the_instant(at: datetime,
                                                                period: timedelta) -> None:
    start = UNIX_EPOCH + grid_index(at, period) * period
    assert start <= at < start + period
    assert snap(at, period) in (start, start + period)
    assert next_grid(at, period) == start + period


def test_a_whole_minute_in_another_zone_is_a_4_s_grid_point() -> None:
    at = datetime(2026, 3, 1, 13, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 12:00 UTC
    period = timedelta(seconds=4)
    index = grid_index(at, period)
    assert index == int((at - UNIX_EPOCH).total_seconds()) // 4
    assert grid_index(at - timedelta(microseconds=1), period) == index - 1
    assert snap(at, period) == at and next_grid(at, period) == at + period


@given(INSTANTS, PERIODS)
def test_on_grid_is_whether_snap_leaves_the_instant(at: datetime, period: timedelta) -> None:
    start = UNIX_EPOCH + grid_index(at, period) * period
    assert on_grid(at, period) == (snap(at, period) == at)
    assert on_grid(start, period) and on_grid(start.astimezone(ZoneInfo("Europe/Berlin")), period)
    assert not on_grid(start + timedelta(microseconds=1), period)
