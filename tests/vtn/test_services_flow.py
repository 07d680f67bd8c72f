"""Registration, poll, events and acks through a real VTN with mutual TLS, on SQLite and PostgreSQL.

The client is a raw one (aiohttp + schemas), so these tests pin the wire behaviour, not our VEN.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from schemas import (
    CanceledPartyRegistration,
    CancelPartyRegistration,
    CreatedEvent,
    CreatedPartyRegistration,
    DistributeEvent,
    EiResponse,
    EventResponse,
    EventStatus,
    OptType,
    QueryRegistration,
    RegisterReport,
    RequestEvent,
    Response,
    Target,
)
from tests.kit.vtn import running_vtn
from vtn.services import Handlers, events
from vtn.storage import OptType as StoredOpt

from .harness import code_of, raw_ven, sample_event, two_registered_vens


async def test_register_poll_event_ack_flow(pki, storage_url):
    acks = []
    async with running_vtn(pki, storage_url,
                           handlers=Handlers(on_event_response=lambda v, r: acks.append((v, r)))
                           ) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        query = await ven.post("EiRegisterParty", QueryRegistration(request_id="q1"))
        assert isinstance(query, CreatedPartyRegistration)
        assert query.vtn_id == "CROWDFLEX-VTN" and query.ven_id is None
        created = await ven.register()
        assert isinstance(created, CreatedPartyRegistration)
        assert created.response.code == 200
        assert created.ven_id == pki.ven.fingerprint
        assert created.requested_oadr_poll_freq is not None

        # the VTN offers its own METADATA first; then nothing
        first = await ven.drain()
        assert [type(m) for m in first] == [RegisterReport]

        event = sample_event("ev-1", Target(ven_ids=(ven.ven_id,)))
        assert await events.publish_event(vtn.ctx, event) == (ven.ven_id,)
        got = await ven.drain()
        assert len(got) == 1 and isinstance(got[0], DistributeEvent)
        (sent,) = got[0].events
        assert sent.event_id == "ev-1" and sent.modification_number == 0
        assert sent.descriptor.event_status is EventStatus.FAR

        ack = CreatedEvent(response=EiResponse(request_id=got[0].request_id), ven_id=ven.ven_id,
                           event_responses=(EventResponse(request_id=got[0].request_id,
                                                          event_id="ev-1", modification_number=0,
                                                          opt_type=OptType.OPT_IN),))
        assert code_of(await ven.post("EiEvent", ack)) == 200
        (delivery,) = await vtn.ctx.storage.events.deliveries("ev-1")
        assert delivery.ack_opt_type is StoredOpt.OPT_IN
        assert delivery.delivered_modification_number == 0
        assert acks and acks[0][0] == ven.ven_id

        # modify: modificationNumber rises, the old ack is now stale (450) and nothing changes
        await events.modify_event(vtn.ctx, sample_event("ev-1", Target(ven_ids=(ven.ven_id,)),
                                                        value=7.0))
        (again,) = await ven.drain()
        assert isinstance(again, DistributeEvent)
        assert again.events[0].modification_number == 1
        assert code_of(await ven.post("EiEvent", ack)) == 450
        ahead = replace(ack, event_responses=(replace(ack.event_responses[0],
                                                      modification_number=2),))
        assert code_of(await ven.post("EiEvent", ahead)) == 452  # no such version (yet)
        (delivery,) = await vtn.ctx.storage.events.deliveries("ev-1")
        assert delivery.ack_modification_number == 0

        # cancel: explicit status cancelled, modificationNumber 2
        await events.cancel_event(vtn.ctx, "ev-1")
        (cancelled,) = await ven.drain()
        assert isinstance(cancelled, DistributeEvent)
        assert cancelled.events[0].descriptor.event_status is EventStatus.CANCELLED
        assert cancelled.events[0].modification_number == 2


async def test_request_event_and_implied_cancel(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register()
        await vtn.ctx.storage.vens.set_memberships(ven.ven_id, ())
        await events.publish_event(vtn.ctx, sample_event("ev-a", Target(ven_ids=(ven.ven_id,))))
        listed = await ven.post("EiEvent", RequestEvent(request_id="x", ven_id=ven.ven_id))
        assert isinstance(listed, DistributeEvent)
        assert [e.event_id for e in listed.events] == ["ev-a"]
        await ven.drain()
        # retarget away from this VEN: it is told with a list that no longer holds the event
        await events.modify_event(vtn.ctx, sample_event("ev-a", Target(ven_ids=("someone",))))
        (changed,) = await ven.drain()
        assert isinstance(changed, DistributeEvent) and changed.events == ()


async def test_reregistration_keeps_ven_id_and_cancel(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        first = await ven.register()
        second = await ven.register()
        assert isinstance(first, CreatedPartyRegistration)
        assert isinstance(second, CreatedPartyRegistration)
        assert (second.ven_id, second.registration_id) == (first.ven_id, first.registration_id)
        canceled = await ven.post("EiRegisterParty", CancelPartyRegistration(
            request_id="c", registration_id=ven.registration_id, ven_id=ven.ven_id))
        assert isinstance(canceled, CanceledPartyRegistration)
        assert code_of(await ven.poll()) == 463
        stored = await vtn.ctx.storage.vens.get(ven.ven_id)
        assert stored is not None and not stored.active


async def test_the_vtn_offers_its_metadata_once_per_registration_round(pki, storage_url):
    """A re-registration of a registered VEN gets no second METADATA; a VEN registering again
    after it cancelled (same registrationID) is offered the VTN's METADATA anew, as after its
    first registration (the profile's registration sequence; conformance case R1_3020 run twice
    against one VTN)."""
    async with running_vtn(pki, storage_url) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        first = await ven.register()
        assert [type(m) for m in await ven.drain()] == [RegisterReport]
        await ven.register()
        assert await ven.drain() == []
        canceled = await ven.post("EiRegisterParty", CancelPartyRegistration(
            request_id="c", registration_id=ven.registration_id, ven_id=ven.ven_id))
        assert isinstance(canceled, CanceledPartyRegistration)
        again = await ven.register()
        assert isinstance(first, CreatedPartyRegistration)
        assert isinstance(again, CreatedPartyRegistration)
        assert again.registration_id == first.registration_id
        assert [type(m) for m in await ven.drain()] == [RegisterReport]
        await ven.register()
        assert await ven.drain() == []


async def test_registration_policy_allow_list_and_hook(pki, storage_url):
    allowed = frozenset({pki.vens[1].fingerprint})
    refused_names = []

    def hook(registration):
        refused_names.append(registration.ven_name)
        return registration.ven_name != "refuse-me"

    async with running_vtn(pki, storage_url, allowed_fingerprints=allowed,
                           handlers=Handlers(on_register=hook)) as vtn:
        async with raw_ven(vtn.url, pki.client_context()) as stranger:
            assert code_of(await stranger.register()) == 463
        async with raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as member:
            assert code_of(await member.register("refuse-me")) == 463
            ok = await member.register("fine")
            assert isinstance(ok, CreatedPartyRegistration) and ok.ven_id
        assert refused_names == ["refuse-me", "fine"]
        assert await vtn.ctx.storage.vens.by_fingerprint(pki.ven.fingerprint) is None


async def test_vtn_initiated_cancel_and_reregistration(pki, storage_url):
    from vtn.services import registration

    async with running_vtn(pki, storage_url) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register()
        await ven.drain()
        await registration.request_reregistration(vtn.ctx, ven.ven_id)
        await registration.cancel_from_vtn(vtn.ctx, ven.ven_id)
        got = await ven.drain()
        assert [type(m).__name__ for m in got] == ["RequestReregistration",
                                                    "CancelPartyRegistration"]
        assert code_of(await ven.post("EiRegisterParty", Response(
            response=EiResponse(request_id=""), ven_id=ven.ven_id))) == 200
        # still registered until the VEN confirms
        assert (await vtn.ctx.storage.vens.get(ven.ven_id)).active
        confirm = CanceledPartyRegistration(response=EiResponse(request_id=got[1].request_id),
                                            registration_id=ven.registration_id,
                                            ven_id=ven.ven_id)
        assert code_of(await ven.post("EiRegisterParty", confirm)) == 200
        assert not (await vtn.ctx.storage.vens.get(ven.ven_id)).active
        await ven.register()  # a cancel is not a ban: the certificate registers again
        assert (await vtn.ctx.storage.vens.get(ven.ven_id)).active


async def test_group_fan_out_reaches_each_ven_once(pki, storage_url):
    from vtn.storage import TargetKind, TargetRef

    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as b:
        await a.register()
        await b.register()
        await a.drain()
        await b.drain()
        for ven in (a, b):
            await vtn.ctx.storage.vens.set_memberships(
                ven.ven_id, (TargetRef(kind=TargetKind.GROUP, value="pool-1"),))
        targeted = await events.publish_event(
            vtn.ctx, sample_event("ev-g", Target(group_ids=("pool-1",))))
        assert set(targeted) == {a.ven_id, b.ven_id}
        async with asyncio.timeout(10):
            got_a, got_b = await asyncio.gather(a.drain(), b.drain())
        assert len(got_a) == len(got_b) == 1
        assert len(await vtn.ctx.storage.events.deliveries("ev-g")) == 2


async def test_each_ven_sees_only_the_target_entries_that_address_it(pki, storage_url):
    """An event for two VENs by venID and for group pool-1 (VEN b's group): a receives its own
    venID only, b its venID and the group; neither learns the other's venID (a certificate
    fingerprint) nor an entry that does not concern it."""
    from vtn.storage import TargetKind, TargetRef

    async with two_registered_vens(pki, storage_url) as (vtn, a, b):
        await vtn.ctx.storage.vens.set_memberships(
            b.ven_id, (TargetRef(kind=TargetKind.GROUP, value="pool-1"),))
        whole = Target(ven_ids=(a.ven_id, b.ven_id, "someone-else"), group_ids=("pool-1",),
                       resource_ids=("r-9",))
        await events.publish_event(vtn.ctx, sample_event("ev-t", whole))
        async with asyncio.timeout(10):
            (got_a,), (got_b,) = await asyncio.gather(a.drain(), b.drain())
        assert isinstance(got_a, DistributeEvent) and isinstance(got_b, DistributeEvent)
        assert got_a.events[0].target == Target(ven_ids=(a.ven_id,))
        assert got_b.events[0].target == Target(ven_ids=(b.ven_id,), group_ids=("pool-1",))
