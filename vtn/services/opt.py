"""EiOpt (OpenADR 2.0b profile 8.4): a VEN's availability schedules and per-event opts.

Invariants: a schedule is stored under (venID, optID) before oadrCreatedOpt is sent; a re-sent
oadrCreateOpt replaces it. Cancelling an optID the VEN does not have is 452 (invalid ID), and so
is an opt naming an event never sent to the VEN (Conformance Rule 21: an unexpected eventID is an
error).
"""

from __future__ import annotations

from schemas import CanceledOpt, CancelOpt, CreatedOpt, CreateOpt, EiResponse, InvalidId
from vtn.storage import OptSchedule, OptType, OptWindow
from vtn.transport import Peer

from ._context import ServiceContext, require_ven
from .hooks import call_hook

__all__ = ["on_cancel_opt", "on_create_opt"]


async def on_create_opt(ctx: ServiceContext, peer: Peer, msg: CreateOpt) -> CreatedOpt:
    registration = await require_ven(ctx, peer, msg.ven_id)
    qualified = msg.qualified_event_id
    if qualified and registration.ven_id not in await ctx.storage.events.delivered_to(
            qualified.event_id):
        raise InvalidId(f"event {qualified.event_id!r} was never sent to this VEN")
    resources = msg.target.resource_ids
    await ctx.storage.opts.put(OptSchedule(
        ven_id=registration.ven_id, opt_id=msg.opt_id, opt_type=OptType(msg.opt_type.value),
        opt_reason=msg.opt_reason.value, market_context=msg.market_context,
        resource_id=resources[0] if len(resources) == 1 else None,
        event_id=qualified.event_id if qualified else None,
        windows=tuple(OptWindow(starts_at=a.dtstart, duration=a.duration)
                      for a in msg.vavailability or ()),
        created_at=msg.created_date_time,
    ))
    await call_hook(ctx.handlers.on_opt, registration.ven_id, msg)
    return CreatedOpt(response=EiResponse(request_id=msg.request_id), opt_id=msg.opt_id)


async def on_cancel_opt(ctx: ServiceContext, peer: Peer, msg: CancelOpt) -> CanceledOpt:
    registration = await require_ven(ctx, peer, msg.ven_id)
    if not await ctx.storage.opts.cancel(registration.ven_id, msg.opt_id, at=ctx.clock()):
        raise InvalidId(f"no opt {msg.opt_id!r} of this VEN")
    await call_hook(ctx.handlers.on_opt, registration.ven_id, msg)
    return CanceledOpt(response=EiResponse(request_id=msg.request_id), opt_id=msg.opt_id)
