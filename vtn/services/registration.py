"""EiRegisterParty (OpenADR 2.0b profile 8.1): query, register, cancel, and the VTN's own requests.

Invariants:
- The venID is the OpenADR fingerprint of the VEN's client certificate, so re-registering (same
  certificate) keeps it; a re-registration also keeps the registrationID.
- A VTN-side cancel is only queued here; the registration ends when the VEN answers
  oadrCanceledPartyRegistration, so the VEN can still poll for the cancel itself.
- A VEN registering for XMPP must do so over XMPP, where the VTN offers it: its transport
  address is the full JID the server stamped on that request (the VTN sends there), never the
  one the payload names; otherwise 454 and nothing is stored.
- A simpleHttp VEN asking for push (httpPullModel false) must give an oadrTransportAddress the
  VTN may push to (:class:`vtn.pushtargets.PushTargets`): otherwise 454 (no address, or not
  https, or with user info, query or fragment) or 451 (a non-public address the configuration
  does not allow), with the reason, and nothing is stored. A pull VEN's address is never used,
  so not checked (openleadr's pull VEN sends the text "None").
- After a registration the VTN's own METADATA report (oadrRegisterReport) is queued, as the
  profile's registration sequence expects: once per round of the registration (dedup key), so a
  re-registration of a registered VEN gets no second one, and a VEN registering again after a
  cancellation or an eviction (same registrationID) gets a new one; a VEN beginning a
  registration that live events already target is queued its event list after it.
"""

from __future__ import annotations

from schemas import (
    CanceledPartyRegistration,
    CancelPartyRegistration,
    CreatedPartyRegistration,
    CreatePartyRegistration,
    EiResponse,
    InvalidData,
    InvalidId,
    NotRegistered,
    Profile,
    ProfileName,
    QueryRegistration,
    RegisterReport,
    RequestReregistration,
    Response,
    TransportName,
    new_id,
)
from vtn.storage import Enrolment, VenRegistration
from vtn.transport import Peer

from . import events
from ._context import ServiceContext, require_ven
from .hooks import call_hook

__all__ = [
    "cancel_from_vtn",
    "evict",
    "on_cancel",
    "on_canceled",
    "on_create",
    "on_query",
    "request_reregistration",
]

def _created(ctx: ServiceContext, request_id: str,
             registration: VenRegistration | None) -> CreatedPartyRegistration:
    active = registration is not None and registration.active
    return CreatedPartyRegistration(
        response=EiResponse(request_id=request_id),
        registration_id=registration.registration_id if active and registration else None,
        ven_id=registration.ven_id if active and registration else None,
        vtn_id=ctx.vtn_id,
        profiles=(Profile(profile_name=ProfileName.OADR_20B, transports=ctx.transports),),
        requested_oadr_poll_freq=ctx.poll_frequency,
    )


async def on_query(ctx: ServiceContext, peer: Peer,
                   msg: QueryRegistration) -> CreatedPartyRegistration:
    """oadrQueryRegistration: what we support; registration IDs too when the peer is registered."""
    return _created(ctx, msg.request_id, await ctx.storage.vens.by_fingerprint(peer.fingerprint))


async def on_create(ctx: ServiceContext, peer: Peer,
                    msg: CreatePartyRegistration) -> CreatedPartyRegistration:
    """oadrCreatePartyRegistration: admit by policy and hook, store, queue our METADATA."""
    if not ctx.policy.admits(peer.fingerprint):
        raise NotRegistered("this certificate is not on the VTN's allow-list")
    existing = await ctx.storage.vens.by_fingerprint(peer.fingerprint)
    if msg.ven_id and msg.ven_id != peer.fingerprint:
        raise NotRegistered(f"venID {msg.ven_id!r} does not belong to this certificate")
    known = existing.registration_id if existing else None
    if msg.registration_id and msg.registration_id != known:
        raise InvalidId(f"registrationID {msg.registration_id!r} is not this VEN's")
    address = msg.transport_address
    if msg.transport_name is TransportName.XMPP:
        if TransportName.XMPP not in ctx.transports or peer.address is None:
            raise InvalidData("register for xmpp over this VTN's XMPP service")
        address = peer.address
    elif msg.http_pull_model is False:
        if not address:
            raise InvalidData("push (httpPullModel false) needs an oadrTransportAddress")
        ctx.push_targets.check_address(address)
    candidate = VenRegistration(
        ven_id=peer.fingerprint,
        registration_id=existing.registration_id if existing else new_id(),
        fingerprint=peer.fingerprint,
        ven_name=msg.ven_name or "",
        profile_name=msg.profile_name.value,
        transport_name=msg.transport_name.value,
        transport_address=address,
        http_pull_model=msg.http_pull_model is not False,
        report_only=msg.report_only,
        xml_signature=msg.xml_signature,
        created_at=existing.created_at if existing else ctx.clock(),
    )
    if await call_hook(ctx.handlers.on_register, candidate) is False:
        raise NotRegistered("registration refused by the VTN's policy")
    ven_id = existing.ven_id if existing else candidate.ven_id  # a stored row keeps its venID
    # a registration's round: the first, or the one after each cancellation (same registrationID)
    round_key = "first" if existing is None or existing.cancelled_at is None \
        else existing.cancelled_at.isoformat()
    metadata = (ctx.queued(
        RegisterReport(request_id=new_id(), reports=(), ven_id=ven_id),
        dedup_key=f"vtn-metadata:{candidate.registration_id}:{round_key}"),
    ) if ctx.offer_metadata else ()
    # one transaction: the row, our METADATA request, and (a VEN beginning a registration) the
    # live events published while it was not there to be targeted, which nothing else queues
    stored = await ctx.storage.vens.enrol(Enrolment(
        registration=candidate, queued=metadata,
        live=events.LIVE if existing is None or not existing.active else (), now=ctx.clock()))
    ctx.on_enrolled(stored)  # a VEN turning to push gets what was queued while it polled
    return _created(ctx, msg.request_id, stored)


async def on_cancel(ctx: ServiceContext, peer: Peer,
                    msg: CancelPartyRegistration) -> CanceledPartyRegistration:
    """oadrCancelPartyRegistration from the VEN: end its own registration."""
    registration = await require_ven(ctx, peer, msg.ven_id)
    if msg.registration_id != registration.registration_id:
        raise InvalidId(f"registrationID {msg.registration_id!r} is not this VEN's")
    await ctx.storage.vens.cancel(registration.registration_id, ctx.clock())
    return CanceledPartyRegistration(
        response=EiResponse(request_id=msg.request_id),
        registration_id=registration.registration_id,
        ven_id=registration.ven_id,
    )


async def on_canceled(ctx: ServiceContext, peer: Peer, msg: CanceledPartyRegistration) -> Response:
    """oadrCanceledPartyRegistration: the VEN confirms a cancel the VTN queued."""
    registration = await require_ven(ctx, peer, msg.ven_id)
    if msg.response.ok:
        await ctx.storage.vens.cancel(registration.registration_id, ctx.clock())
    return Response(response=EiResponse(request_id=msg.response.request_id),
                    ven_id=registration.ven_id)


async def cancel_from_vtn(ctx: ServiceContext, ven_id: str) -> str:
    """Queue oadrCancelPartyRegistration for the VEN; returns its requestID."""
    registration = await _active(ctx, ven_id)
    request_id = new_id()
    await ctx.enqueue((ven_id,), CancelPartyRegistration(
        request_id=request_id, registration_id=registration.registration_id, ven_id=ven_id))
    return request_id


async def evict(ctx: ServiceContext, ven_id: str) -> tuple[int, int]:
    """Forced deregistration, effective at once and needing nothing from the VEN: its
    registration cancelled (its next request is refused with 463), its queued items dropped, its
    open connections closed. Returns (items dropped, connections closed)."""
    registration = await ctx.storage.vens.get(ven_id)
    if registration is None:
        raise LookupError(f"no VEN {ven_id!r}")
    if registration.active:
        await ctx.storage.vens.cancel(registration.registration_id, ctx.clock())
    dropped = await ctx.storage.outbox.drop_pending(ven_id)
    return dropped, ctx.close_connections(registration.fingerprint)


async def request_reregistration(ctx: ServiceContext, ven_id: str) -> None:
    """Queue oadrRequestReregistration for the VEN (it answers oadrResponse, then registers)."""
    await _active(ctx, ven_id)
    await ctx.enqueue((ven_id,), RequestReregistration(ven_id=ven_id))


async def _active(ctx: ServiceContext, ven_id: str) -> VenRegistration:
    registration = await ctx.storage.vens.get(ven_id)
    if registration is None or not registration.active:
        raise LookupError(f"no active VEN {ven_id!r}")
    return registration


