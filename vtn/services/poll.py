"""OadrPoll (OpenADR 2.0b profile 8.6): hand a pull-mode VEN the next payload queued for it.

One payload per poll, oldest first; nothing queued -> oadrResponse 200. A VEN is expected to poll
again at once after a non-empty reply (DESIGN.md 3), so a burst drains at network speed.

Invariants:
- An "event list changed" item is answered with the VEN's whole current list, built now; every
  other such item still queued for that VEN is retired with it (one list supersedes them all).
- An item is marked delivered before the reply is returned: delivery is at most once per claim.
  A reply lost on the wire is recovered by the protocol itself (the VEN's oadrRequestEvent, or the
  VTN's re-queue), which the outbox's lease cannot do once the HTTP reply was written.
"""

from __future__ import annotations

from schemas import EiResponse, Message, Poll, Response
from vtn.storage import OutboxItem
from vtn.transport import Peer

from ._context import ServiceContext, new_id, require_ven
from .events import EVENT_KIND, distribute_for

__all__ = ["next_message", "on_poll"]


async def next_message(ctx: ServiceContext, ven_id: str, *,
                       mark: bool = True) -> tuple[Message, OutboxItem] | None:
    """Claim the VEN's next queued payload and (with ``mark``) mark it delivered; None when
    nothing waits. Without ``mark`` the caller marks or releases the claimed item itself."""
    item = await ctx.storage.outbox.next_for(ven_id, now=ctx.clock())
    if item is None:
        return None
    now = ctx.clock()
    if item.kind == EVENT_KIND:
        for other in await ctx.storage.outbox.pending(ven_id):
            if other.kind == EVENT_KIND and other.seq != item.seq:
                await ctx.storage.outbox.mark_delivered(other.seq, at=now)
        message: Message = await distribute_for(ctx, ven_id, new_id())
    else:
        message = ctx.store_codec.decode(item.payload)
    if mark:
        await ctx.storage.outbox.mark_delivered(item.seq, at=now)
    return message, item


async def on_poll(ctx: ServiceContext, peer: Peer, msg: Poll) -> Message:
    registration = await require_ven(ctx, peer, msg.ven_id)
    # Most polls find nothing. Answering those from a read transaction (WAL readers never wait)
    # keeps hundreds of idle VENs from queueing on SQLite's single write lock, which the claim's
    # BEGIN IMMEDIATE takes (measured: 500 VENs polling each second hit "database is locked").
    if not await ctx.storage.outbox.pending_count(registration.ven_id):
        return Response(response=EiResponse(), ven_id=registration.ven_id)
    found = await next_message(ctx, registration.ven_id)
    if found is None:
        return Response(response=EiResponse(), ven_id=registration.ven_id)
    return found[0]
