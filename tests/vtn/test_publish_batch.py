"""Publishing and cancelling many events at once (an aggregator's one event per device), through
a real VTN with mutual TLS, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from schemas import Codec, DistributeEvent, EventStatus, LocalProtocolError, Target
from schemas import _event_cache as event_cache
from tests.kit.vtn import running_vtn
from vtn.services import events
from vtn.storage import StaleModification

from .harness import raw_ven, sample_event, two_registered_vens


async def test_a_batch_reaches_each_ven_with_only_its_own_event_and_cancels_together(
        pki, storage_url):
    """Two events, one per VEN, published in one call: each VEN's next poll carries its own event
    and not the other's; one cancel_events call then raises both to modificationNumber 1,
    cancelled, and each VEN learns of its own."""
    async with two_registered_vens(pki, storage_url) as (vtn, a, b):
        batch = (sample_event("ev-a", Target(ven_ids=(a.ven_id,))),
                 sample_event("ev-b", Target(ven_ids=(b.ven_id,))))
        assert await events.publish_events(vtn.ctx, batch) == ((a.ven_id,), (b.ven_id,))
        async with asyncio.timeout(10):
            (got_a,), (got_b,) = await asyncio.gather(a.drain(), b.drain())
        assert isinstance(got_a, DistributeEvent) and isinstance(got_b, DistributeEvent)
        assert [e.event_id for e in got_a.events] == ["ev-a"]
        assert [e.event_id for e in got_b.events] == ["ev-b"]

        await events.cancel_events(vtn.ctx, ("ev-a", "ev-b"))
        async with asyncio.timeout(10):
            (got_a,), (got_b,) = await asyncio.gather(a.drain(), b.drain())
        for got, event_id in ((got_a, "ev-a"), (got_b, "ev-b")):
            assert isinstance(got, DistributeEvent)
            (sent,) = got.events
            assert sent.event_id == event_id and sent.modification_number == 1
            assert sent.descriptor.event_status is EventStatus.CANCELLED


async def test_a_published_batch_is_sent_without_parsing_what_was_stored(
        pki, storage_url, monkeypatch):
    """Each event of a batch goes out from the object published (no parse of its stored
    payload) and from the oadrEvent text written to store it (no second build), and that payload
    is byte for byte what the object encodes to: a VEN receives what a parse of the stored bytes
    would have sent."""
    async with two_registered_vens(pki, storage_url) as (vtn, a, b):
        at = datetime.now(UTC)  # microseconds and all, as an aggregator's clock stamps them
        batch = tuple(replace(e, descriptor=replace(e.descriptor, created_date_time=at))
                      for e in (sample_event(f"ev-{v.ven_id}", Target(ven_ids=(v.ven_id,)))
                                for v in (a, b)))
        parsed = []
        decode = vtn.ctx.store_codec.decode
        monkeypatch.setattr(vtn.ctx.store_codec, "decode",
                            lambda payload: parsed.append(payload) or decode(payload))
        await events.publish_events(vtn.ctx, batch)
        built = []
        texts = event_cache.event_texts
        monkeypatch.setattr(event_cache, "event_texts",
                            lambda event: built.append(event) or texts(event))
        async with asyncio.timeout(10):
            (got_a,), (got_b,) = await asyncio.gather(a.drain(), b.drain())
        assert parsed == [] and built == []
        assert [got.events for got in (got_a, got_b)] == [(batch[0],), (batch[1],)]
        stored = await vtn.ctx.storage.events.get_many(e.event_id for e in batch)
        fresh = Codec()
        for event in batch:
            payload = stored[event.event_id].payload
            assert fresh.encode(fresh.decode(payload)) == payload
            assert fresh.decode(payload).events == (event,)


async def test_a_batch_with_one_stale_event_stores_none_of_them(pki, storage_url):
    """Tried: a batch of a new event and an older modificationNumber of a stored one. The batch
    is refused as stale, the new event is not stored and the stored one is unchanged."""
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a:
        await a.register()
        await a.drain()
        stored = sample_event("ev-s", Target(ven_ids=(a.ven_id,)))
        await events.publish_event(vtn.ctx, replace(stored, descriptor=replace(
            stored.descriptor, modification_number=2)))
        with pytest.raises(StaleModification):
            await events.publish_events(vtn.ctx, (
                sample_event("ev-new", Target(ven_ids=(a.ven_id,))), stored))
        assert await events.get_event(vtn.ctx, "ev-new") is None
        kept = await events.get_event(vtn.ctx, "ev-s")
        assert kept is not None and kept.modification_number == 2


async def test_a_batch_with_a_value_no_float_holds_is_refused_and_stores_nothing(
        pki, storage_url):
    """Tried: a batch of a good event and one whose setpoint is an int beyond every float
    (10**400). The batch is refused with an error saying so; neither event is stored and the
    VEN's poll finds nothing new."""
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a:
        await a.register()
        await a.drain()
        target = Target(ven_ids=(a.ven_id,))
        with pytest.raises(LocalProtocolError, match="too large for a float"):
            await events.publish_events(vtn.ctx, (
                sample_event("ev-good", target), sample_event("ev-huge", target, value=10**400)))
        assert await events.get_event(vtn.ctx, "ev-good") is None
        assert await events.get_event(vtn.ctx, "ev-huge") is None
        assert await a.drain() == []


async def test_a_batch_cancel_leaves_a_completed_event_as_it_is(pki, storage_url):
    """cancel_events naming a live event and one whose active period ended: the live one is
    cancelled, the completed one keeps modificationNumber 0 and its entry is ``()`` (an
    aggregator releasing its device events late is not refused for the ones already over)."""
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a:
        await a.register()
        await a.drain()
        target = Target(ven_ids=(a.ven_id,))
        ended = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        await events.publish_events(vtn.ctx, (sample_event("ev-live", target),
                                              sample_event("ev-over", target, start=ended)))
        assert await events.cancel_events(vtn.ctx, ("ev-live", "ev-over")) == ((a.ven_id,), ())
        live = await events.get_event(vtn.ctx, "ev-live")
        assert live is not None and live.descriptor.event_status is EventStatus.CANCELLED
        over = await events.get_event(vtn.ctx, "ev-over")
        assert over is not None and over.modification_number == 0
        assert over.descriptor.event_status is not EventStatus.CANCELLED


async def test_cancelling_an_unknown_event_in_a_batch_cancels_nothing(pki, storage_url):
    """Tried: cancel_events naming a stored event and an unknown one: LookupError naming the
    unknown one, and the stored event is still active at modificationNumber 0."""
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a:
        await a.register()
        await a.drain()
        await events.publish_event(vtn.ctx, sample_event("ev-k", Target(ven_ids=(a.ven_id,))))
        with pytest.raises(LookupError, match="ev-missing"):
            await events.cancel_events(vtn.ctx, ("ev-k", "ev-missing"))
        kept = await events.get_event(vtn.ctx, "ev-k")
        assert kept is not None and kept.modification_number == 0
        assert kept.descriptor.event_status is not EventStatus.CANCELLED
