"""LOAD_DISPATCH setpoint events: written one interval per run of equal setpoints, read back one
setpoint per sample instant whoever wrote them, and bounded in what they can ask for."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cbp.market import Sample
from cbp.roles import CbpSettings
from cbp.roles.messages import LONGEST_ACTIVATION, activation_event, event_setpoints
from cbp.roles.tso import ramp_setpoints
from schemas import (
    Codec,
    DistributeEvent,
    Event,
    EventInterval,
    EventSignal,
    ItemBase,
    SignalType,
    Target,
)
from tests.schemas.xsd_oracle import assert_xsd_valid

PERIOD = CbpSettings.compressed().rules.sample_period
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _event(values: list[float], *, kilowatts: bool = True) -> Event:
    return activation_event(event_id="act-1", start=T0, period=PERIOD, values=values,
                            target=Target(ven_ids=("ven-1",)), market_context="http://mc",
                            created=T0, kilowatts=kilowatts)


def _samples(values: list[float]) -> tuple[Sample, ...]:
    return tuple(Sample(at=T0 + i * PERIOD, value=Decimal(str(v))) for i, v in enumerate(values))


def test_a_ramp_is_one_interval_per_run_and_reads_back_every_sample() -> None:
    """The TSO's 15-sample ramp (1/3, 2/3, ten at full, 2/3, 1/3, 0) is six intervals, each
    as long as its run; read back, the fifteen setpoints at their fifteen instants."""
    values = [float(v) for v in ramp_setpoints(Decimal("7.2"), 15)]
    event = _event(values, kilowatts=False)
    (signal,) = event.signals
    assert [(i.values[0], i.duration) for i in signal.intervals] == [
        (2.4, PERIOD), (4.8, PERIOD), (7.2, 10 * PERIOD), (4.8, PERIOD), (2.4, PERIOD),
        (0.0, PERIOD)]
    assert [i.uid for i in signal.intervals] == ["0", "1", "2", "3", "4", "5"]
    assert event.active_period.duration == 15 * PERIOD
    assert event_setpoints(event, PERIOD) == _samples(values)
    assert_xsd_valid(Codec().encode(DistributeEvent(request_id="r", vtn_id="v",
                                                    events=(event,))))


@pytest.mark.parametrize("values", [[3.0], [3.0] * 15, [1.0, 2.0, 1.0, 2.0], [0.0, 0.0, 5.5]])
def test_what_is_written_is_what_is_read(values: list[float]) -> None:
    assert event_setpoints(_event(values), PERIOD) == _samples(values)


def test_an_interval_per_sample_from_another_vtn_reads_as_before() -> None:
    """A VTN that writes one interval per sample (and equal neighbours apart) is read the same."""
    event = _event([1.0])
    per_sample = EventSignal(
        signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT, signal_id="setpoint",
        item_base=ItemBase.kilowatts(),
        intervals=tuple(EventInterval(uid=str(i), duration=PERIOD, values=(v,))
                        for i, v in enumerate([1.0, 1.0, 2.0])))
    event = _replace_signal(event, per_sample)
    assert event_setpoints(event, PERIOD) == _samples([1.0, 1.0, 2.0])


def test_an_event_spanning_more_than_the_longest_activation_is_ignored(
        caplog: pytest.LogCaptureFixture) -> None:
    """One interval of a year would be millions of samples to plan: the event is not read."""
    event = _event([1.0])
    year = EventSignal(
        signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT, signal_id="setpoint",
        item_base=ItemBase.kilowatts(),
        intervals=(EventInterval(uid="0", duration=LONGEST_ACTIVATION + PERIOD, values=(1.0,)),))
    with caplog.at_level(logging.WARNING, logger="cbp.roles.messages"):
        assert event_setpoints(_replace_signal(event, year), PERIOD) == ()
    assert "act-1" in caplog.text and "span more than" in caplog.text
    day = _replace_signal(event, EventSignal(
        signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT, signal_id="setpoint",
        item_base=ItemBase.kilowatts(),
        intervals=(EventInterval(uid="0", duration=LONGEST_ACTIVATION, values=(1.0,)),)))
    assert len(event_setpoints(day, PERIOD)) == LONGEST_ACTIVATION // PERIOD


def _replace_signal(event: Event, signal: EventSignal) -> Event:
    return replace(event, signals=(signal,))
