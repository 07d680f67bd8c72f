"""Role-level exceptions of an activation (docs/architecture.md#reference-scenarios): late acks,
cancel, stale copies, devices dropping out. A real TSO node, aggregator node and device VENs over
mutual TLS on
loopback (:mod:`tests.cbp.rolekit`), time driven by an injected clock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from schemas import DistributeEvent, EventStatus, Response
from tests.schemas.xsd_oracle import assert_xsd_valid
from vtn.services.events import get_event

from .rolekit import NATURAL_KW, Rig, drain, until

SAMPLES = 9


async def test_an_ack_after_the_deadline_is_recorded_late_and_one_at_it_is_not(rig: Rig) -> None:
    # far enough ahead that the event is still to come after a minute of waiting
    activation = await rig.activation((Decimal("0.06"),) * SAMPLES, lead=timedelta(minutes=2))
    rig.clock.now += timedelta(seconds=31)  # the aggregator polls 31 s after the TSO sent
    await rig.dispatched(activation)
    assert [(a.delay, a.late) for a in activation.acks] == [(timedelta(seconds=31), True)]
    assert activation.late

    await rig.tso.modify(activation.event_id, (Decimal("0.04"),) * SAMPLES)
    rig.clock.now += timedelta(seconds=30)  # exactly at the deadline: on time
    await rig.dispatched(activation)
    assert [(a.delay, a.late) for a in activation.acks][1:] == [(timedelta(seconds=30), False)]
    # the first, late ack stays on the record (settle flags the statement ack_late from it)
    assert activation.late


async def test_a_cancel_releases_every_device_and_a_stale_copy_is_refused_with_450(
        rig: Rig) -> None:
    agg = rig.aggregator
    assert agg.upstream is not None
    activation = await rig.activation((Decimal("0.06"),) * SAMPLES)
    await rig.dispatched(activation)
    start = activation.setpoints[0].at
    dispatched = agg.activations[activation.event_id]
    device_events = dict(dispatched.device_events)
    assert len(device_events) == 3  # 60 kW over 20-kW devices
    await rig.step(start)
    steered = {n.identity.fingerprint: n.setpoint(start) for n in rig.nodes}
    assert sorted(v for v in steered.values() if v is not None) == [0.0, 0.0, 0.0]
    assert sum(NATURAL_KW - s.true_kw for s in rig.sims.values()) == 60.0
    stale_event = await get_event(rig.tso.ctx, activation.event_id)
    assert stale_event is not None and stale_event.modification_number == 0

    await rig.tso.cancel(activation.event_id)
    await rig.dispatched(activation)
    assert dispatched.cancelled
    # a cancelled event is final: cancelling it again publishes no new modificationNumber
    assert (await rig.tso.cancel(activation.event_id)).modification_number == 1
    cancelled_event = await get_event(rig.tso.ctx, activation.event_id)
    assert cancelled_event is not None and cancelled_event.modification_number == 1
    for event_id in device_events.values():
        event = await rig.device_event(event_id)
        assert event is not None and event.descriptor.event_status is EventStatus.CANCELLED
    later = start + rig.period
    await rig.step(later)
    # every device follows its natural draw again: the pool's regulation is 0
    assert all(n.setpoint(later) is None for n in rig.nodes)
    assert sum(NATURAL_KW - s.true_kw for s in rig.sims.values()) == 0.0

    # the old version (modificationNumber 0) arrives again, e.g. a delayed duplicate: handed
    # to the client's receive, the entry every pulled or pushed payload goes through
    seen = len(agg.upstream.refused)
    agg.outbound.echoes.learn(("stale-copy",))  # as decoding the TSO's message would
    outcome = await agg.upstream.receive(DistributeEvent(
        request_id="stale-copy", vtn_id=rig.tso.config.vtn_id, events=(stale_event,)))
    assert agg.upstream.refused[seen:] == [("oadrDistributeEvent", 450)]
    assert isinstance(outcome.reply, Response)
    assert (outcome.reply.response.code, outcome.reply.response.request_id) == (450, "stale-copy")
    # nothing changed: no handler ran, the activation stays cancelled, no device event moved
    await drain(agg.upstream)
    assert not agg.operation.handled.is_set()
    assert agg.activations[activation.event_id] is dispatched and dispatched.cancelled
    assert dispatched.device_events == device_events
    assert agg.upstream.events[activation.event_id].modification_number == 1
    await rig.step(later + rig.period)
    assert all(n.setpoint(later + rig.period) is None for n in rig.nodes)
    # the answer is what the aggregator's filtered codec lets onto the TSO link, XSD-valid
    assert_xsd_valid(agg.codec.encode(outcome.reply))


async def test_a_device_silent_for_three_samples_is_replaced_by_a_live_one(rig: Rig) -> None:
    agg = rig.aggregator
    activation = await rig.activation((Decimal("0.06"),) * 24)
    await rig.dispatched(activation)
    dispatched = agg.activations[activation.event_id]
    first = dict(dispatched.device_events)
    assert len(first) == 3
    start = activation.setpoints[0].at
    await rig.run_until(start + rig.period)  # two samples followed by all three
    by_uuid = {s.device_id: fp for fp, s in rig.sims.items()}
    dropped = sorted(first)[0]
    rig.sims[by_uuid[dropped]].set_online(False)
    gone_at = start + 2 * rig.period
    # samples close telemetry_batch + grace after they are taken; the third miss is found then
    closes = rig.settings.timing.telemetry_batch + rig.settings.timing.telemetry_grace
    await rig.run_until(gone_at + 3 * rig.period + closes, start=gone_at)
    assert dispatched.lost == {dropped}
    assert dispatched.redispatches == 1
    await until(agg.operation.redispatched)
    second = dispatched.device_events
    assert dropped not in second and len(second) == 3
    assert set(first) - {dropped} < set(second)  # the two live ones keep steering
    for device in first:  # every first-version device event was withdrawn
        event = await rig.device_event(first[device])
        assert event is not None and event.descriptor.event_status is EventStatus.CANCELLED
    # the new setpoints reach the live device nodes: one step later they all steer to 0 kW
    now = rig.clock.now + rig.period
    await rig.step(now)
    steering = {fp for fp, s in rig.sims.items() if s.online and s.true_kw == 0.0}
    assert steering == {by_uuid[d] for d in second}
    for node in rig.nodes:
        sim = rig.sims[node.identity.fingerprint]
        expected = 0.0 if sim.device_id in second else None
        assert node.setpoint(now) == expected
        if sim.device_id in second:
            assert second[sim.device_id] in node.client.events
    # the pool still delivers the setpoint: three live devices at 0 of their 20 kW
    assert sum(NATURAL_KW - s.true_kw for s in rig.sims.values() if s.online) == 60.0
    # each device counts once in "X of Y acknowledged": the three steering now acknowledged
    # their new events; the first version's acks (the lost device's among them) count no more
    assert dispatched.acked == set(second)
