"""OadrPoll (OpenADR 2.0b profile 8.6): hand a pull-mode VEN the next payload queued for it.

One payload per poll, oldest first; nothing queued -> oadrResponse 200. A VEN is expected to poll
again at once after a non-empty reply (DESIGN.md 3), so a burst drains at network speed.

Invariants:
- An "event list changed" item is answered with the VEN's whole current list, built now; every
  other such item still queued for that VEN is retired with it (one list supersedes them all), in
  the claim's transaction.
- An empty poll costs one read transaction (registration and "anything waiting?" in one
  statement), and none at all on SQLite once the poll index knows the VEN is quiet
  (:mod:`vtn.storage.pollindex`); a poll that carries an event list costs three (lookup, claim,
  the VEN's list chosen and its deliveries recorded together with the item).
- An item is marked delivered before the reply is returned: delivery is at most once per claim.
  A reply lost on the wire is recovered by the protocol itself (the VEN's oadrRequestEvent, or the
  VTN's re-queue), which the outbox's lease cannot do once the HTTP reply was written.
"""

from __future__ import annotations

from schemas import EiResponse, Message, Poll, Response
from vtn.storage import OutboxItem
from vtn.transport import Peer

from ._context import ServiceContext, bind_ven, new_id
from .events import EVENT_KIND, distribute_for

__all__ = ["next_message", "on_poll"]


async def next_message(ctx: ServiceContext, ven_id: str, *,
                       mark: bool = True) -> tuple[Message, OutboxItem] | None:
    """Claim the VEN's next queued payload and (with ``mark``) mark it delivered; None when
    nothing waits. Without ``mark`` the caller marks or releases the claimed item itself."""
    item = await ctx.storage.outbox.next_for(ven_id, now=ctx.clock(), supersede=EVENT_KIND)
    if item is None:
        return None
    if item.kind == EVENT_KIND:
        message: Message = await distribute_for(ctx, ven_id, new_id(),
                                                outbox_seq=item.seq if mark else None)
    else:
        message = ctx.store_codec.decode(item.payload)
        if mark:
            await ctx.storage.outbox.mark_delivered(item.seq, at=ctx.clock())
    return message, item


async def on_poll(ctx: ServiceContext, peer: Peer, msg: Poll) -> Message:
    found_ven, waiting = await ctx.storage.vens.poll_lookup(peer.fingerprint)
    registration = bind_ven(found_ven, msg.ven_id)
    # Most polls find nothing. Answering those from a read transaction (WAL readers never wait)
    # keeps hundreds of idle VENs from queueing on SQLite's single write lock, which the claim's
    # BEGIN IMMEDIATE takes (measured: 500 VENs polling each second hit "database is locked").
    if not waiting:
        return Response(response=EiResponse(), ven_id=registration.ven_id)
    found = await next_message(ctx, registration.ven_id)
    if found is None:
        return Response(response=EiResponse(), ven_id=registration.ven_id)
    return found[0]
