"""The TSO link drops mid-activation (exceptions of docs/architecture.md#reference-scenarios), at
role level.

The TSO's VTN stops listening and drops its connections (its port refuses), then listens again on
the same port over the same database. Time is the injected clock: a 36-s or 68-s outage is a
run of sample steps, not a wait. Asserted:
- 36 s: the aggregator holds the dispatched setpoints (device events untouched, the devices keep
  steering), keeps its pool rows, and after the link is back sends every row exactly once, at its
  original instant, those held over the outage marked ``oadrDataQuality`` ``x-late``; every
  message on the link is XSD-valid;
- over 60 s: every running activation is released, the device events are cancelled and the pool
  returns to its natural draw (regulation 0).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from cbp.roles.profile import LATE_QUALITY
from schemas import EventStatus, UpdateReport
from tests.schemas.xsd_oracle import assert_xsd_valid
from vtn.app import STORAGE

from .rolekit import NATURAL_KW, Rig, poll_through

SETPOINT_KW = 60.0


async def _running(rig: Rig) -> tuple[str, datetime]:
    """An activation of 30 samples at 60 kW, dispatched, its first three samples run."""
    activation = await rig.activation((Decimal("0.06"),) * 30)
    await rig.dispatched(activation)
    start = activation.setpoints[0].at
    await rig.run_until(start + 2 * rig.period)
    assert _reduction(rig) == SETPOINT_KW
    return activation.event_id, start + 2 * rig.period


def _reduction(rig: Rig) -> float:
    return sum(NATURAL_KW - s.true_kw for s in rig.sims.values())


async def _reconnect(rig: Rig) -> None:
    """The TSO listens again and the aggregator's next poll gets through."""
    await rig.tso_back()
    await poll_through(rig)


async def _device_events_cancelled(rig: Rig, event_id: str) -> list[bool]:
    dispatched = rig.aggregator.activations[event_id]
    found = []
    for device_event in dispatched.device_events.values():
        event = await rig.device_event(device_event)
        assert event is not None
        found.append(event.descriptor.event_status is EventStatus.CANCELLED)
    return found


def _pool_points_on_the_wire(rig: Rig) -> Counter[tuple[datetime, str | None]]:
    """(instant, quality) of every pool value the aggregator sent, from the TSO's captures."""
    seen: Counter[tuple[datetime, str | None]] = Counter()
    pool_id = rig.settings.pool_id
    for path in sorted(rig.captures.glob("*.xml")):
        data = path.read_bytes()
        if not data:
            continue
        assert_xsd_valid(data)
        message = rig.tso.ctx.codec.decode(data)
        if not isinstance(message, UpdateReport) or not path.name.endswith("-request.xml"):
            continue
        for report in message.reports:
            for interval in report.intervals:
                for p in interval.payloads:
                    if p.r_id == pool_id and interval.dtstart is not None:
                        quality = None if p.data_quality is None else str(p.data_quality)
                        seen[(interval.dtstart, quality)] += 1
    return seen


async def test_a_36_s_outage_holds_the_setpoints_and_delivers_the_rows_late(rig: Rig) -> None:
    agg = rig.aggregator
    event_id, last_up = await _running(rig)
    await rig.tso_down()
    back_at = last_up + timedelta(seconds=36)
    await rig.run_until(back_at)
    # held: nothing released, no device event cancelled, the pool still follows the setpoint
    dispatched = agg.activations[event_id]
    assert dispatched.released_at is None and not dispatched.cancelled
    assert await _device_events_cancelled(rig, event_id) == [False] * 3
    assert _reduction(rig) == SETPOINT_KW
    snapshot = agg.status()
    held = snapshot.late
    assert len(held) >= 5, "the outage should have held rows back"

    await _reconnect(rig)
    await rig.step(back_at + rig.period)  # contact again: the held rows go out, marked late
    status = agg.status()
    assert not status.unsent and not status.late
    # a snapshot is a copy: it does not follow the node, and cannot be written to
    assert snapshot.late == held and len(snapshot.unsent) >= len(held)
    with pytest.raises(TypeError):
        snapshot.msp_sent["x"] = 1  # type: ignore[index]
    assert dispatched.released_at is None
    rows = {r.at: r.mw for r in status.pool_rows}
    assert held < set(rows)

    # at the TSO: every closed row once, at its original instant, the held ones marked late
    stored = await rig.tso.app[STORAGE].reports.points(
        dispatched_ven(rig), min(rows), max(rows) + rig.period, r_id=rig.settings.pool_id)
    assert {p.dtstart: Decimal(str(p.value)) for p in stored} == rows
    assert {p.dtstart for p in stored if p.data_quality == LATE_QUALITY} == held
    assert rig.tso.late_samples[dispatched_ven(rig)] == held
    on_wire = _pool_points_on_the_wire(rig)
    assert set(on_wire.values()) == {1}, "a pool value crossed the link twice"
    assert {at for at, _ in on_wire} == set(rows)
    assert {at for at, quality in on_wire if quality == LATE_QUALITY} == held


async def test_over_60_s_without_the_tso_the_pool_ramps_to_zero(rig: Rig) -> None:
    agg = rig.aggregator
    event_id, last_up = await _running(rig)
    await rig.tso_down()
    release = rig.settings.timing.link_release
    await rig.run_until(last_up + release - rig.period)
    dispatched = agg.activations[event_id]
    assert dispatched.released_at is None, "released before the configured 60 s"
    assert _reduction(rig) == SETPOINT_KW
    await rig.run_until(last_up + release)
    assert dispatched.released_at == last_up + release
    assert await _device_events_cancelled(rig, event_id) == [True] * 3
    await rig.step(last_up + release + rig.period)  # the devices hear it on their next poll
    assert all(n.setpoint(rig.clock.now) is None for n in rig.nodes)
    assert _reduction(rig) == 0.0
    # once per outage: nothing more is released while the silence goes on
    await rig.step(last_up + release + 2 * rig.period)
    assert dispatched.released_at == last_up + release


def dispatched_ven(rig: Rig) -> str:
    upstream = rig.aggregator.upstream
    assert upstream is not None and upstream.registration is not None
    return upstream.registration.ven_id
