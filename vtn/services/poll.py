"""OadrPoll (OpenADR 2.0b profile 8.6): hand a pull-mode VEN the next payload queued for it.

One payload per poll, oldest first; nothing queued -> oadrResponse 200. A VEN is expected to poll
again at once after a non-empty reply (docs/architecture.md#the-cbp-profile-on-openadr), so a burst
drains at network speed.

Invariants:
- An "event list changed" item is answered with the VEN's whole current list, built now; every
  other such item still queued for that VEN is retired with it (one list supersedes them all), in
  the claim's transaction.
- An empty poll costs one read transaction (registration and "anything waiting?" in one
  statement), and none at all on SQLite once the poll index knows the VEN is quiet
  (:mod:`vtn.storage.pollindex`). A poll that carries a payload costs one write, which takes the
  item, marks it delivered and, for an event list, chooses the list and records its deliveries;
  the lookup's read comes first unless, on SQLite, the index knows an item was queued (so in a
  fan-out neither the poll that gets the event nor the one after it reads).
- An item is marked delivered before the reply is returned: delivery is at most once. A reply
  lost on the wire is recovered by the protocol itself (the VEN's oadrRequestEvent, or the VTN's
  re-queue), which the outbox's lease cannot do once the HTTP reply was written. Push delivery
  (``mark=False``) claims under the lease instead and marks once the VEN answered.
"""

from __future__ import annotations

from schemas import EiResponse, Message, Poll, Response, new_id
from vtn.storage import OutboxItem
from vtn.transport import Peer

from ._context import ServiceContext, bind_ven
from .events import EVENT_KIND, event_list, list_message

__all__ = ["next_message", "on_poll"]


async def next_message(ctx: ServiceContext, ven_id: str, *,
                       mark: bool = True) -> tuple[Message, OutboxItem] | None:
    """The VEN's next queued payload, marked delivered (with ``mark``); None when nothing
    waits. Without ``mark`` the item is only claimed, in one write transaction with its event
    list: the caller marks or releases it."""
    now = ctx.clock()
    query = event_list(ctx, ven_id, now)
    delivered = await (ctx.storage.events.deliver_next(query) if mark
                       else ctx.storage.events.claim_next(query))
    if delivered is None:
        return None
    item = delivered.item
    if item.kind == EVENT_KIND:
        return list_message(ctx, delivered.events, now, new_id()), item
    return ctx.store_codec.decode(item.payload), item


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
