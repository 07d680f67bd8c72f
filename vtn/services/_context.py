"""What every service handler shares: storage, codecs, clock, policy and the application hooks.

Invariants:
- A handler learns who is talking only from the :class:`~vtn.transport.Peer` (the TLS client
  certificate), never from the payload: :func:`require_ven` binds the payload's venID to the peer's
  registration and refuses anything else with 463 before any state is read or written.
- The application's hooks are :class:`~vtn.services.hooks.Handlers` (typed there); a hook runs
  after the state it describes is committed, except ``on_register``, which runs first because it
  may refuse.
- Payloads queued for VENs are encoded with ``store_codec`` (never signed): the outbox holds what
  to say, and the signing codec signs it when it is actually sent.
- The context holds no cache itself: derived events live in its :class:`EventCache`, made from
  its two codecs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas import Codec, Message, NotRegistered, TransportName, utc_now
from vtn.limits import DocumentCaps
from vtn.pushtargets import PushTargets
from vtn.storage import Queued, Storage, VenRegistration
from vtn.transport import Peer

from ._event_cache import EventCache
from .hooks import Handlers

__all__ = [
    "RegistrationPolicy",
    "ServiceContext",
    "bind_ven",
    "require_ven",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationPolicy:
    """Who may register: any certificate that chained to the CA (the TLS layer checked that), or,
    with ``allowed_fingerprints``, only those."""

    allowed_fingerprints: frozenset[str] | None = None

    def admits(self, fingerprint: str) -> bool:
        allowed = self.allowed_fingerprints
        return allowed is None or fingerprint.upper() in {f.upper() for f in allowed}


@dataclass(slots=True, kw_only=True)
class ServiceContext:
    """Everything the five services need; one per VTN application (no module globals)."""

    storage: Storage
    codec: Codec
    store_codec: Codec
    vtn_id: str
    poll_frequency: timedelta = timedelta(seconds=10)
    policy: RegistrationPolicy = field(default_factory=RegistrationPolicy)
    handlers: Handlers = field(default_factory=Handlers)
    clock: Callable[[], datetime] = utc_now
    # reportNames whose METADATA a VEN registers are requested at once by default
    auto_subscribe: tuple[str, ...] = ("TELEMETRY_USAGE", "TELEMETRY_STATUS")
    default_granularity: timedelta = timedelta(minutes=1)
    cancelled_event_retention: timedelta = timedelta(days=1)
    offer_metadata: bool = True
    caps: DocumentCaps = field(default_factory=DocumentCaps)
    # the transports VENs may register for (simpleHttp, and xmpp when [xmpp] is set)
    transports: tuple[TransportName, ...] = (TransportName.SIMPLE_HTTP,)
    # where push VENs may ask the VTN to POST (checked at registration)
    push_targets: PushTargets = field(default_factory=PushTargets)
    # set by the app: wakes push delivery when something was queued
    on_enqueued: Callable[[Iterable[str]], None] = field(default=lambda _vens: None)
    # set by the app: the same for a VEN whose registration was just stored, which push
    # delivery can judge from that registration without reading it
    on_enrolled: Callable[[VenRegistration], None] = field(default=lambda _registration: None)
    # set by the app: closes a certificate's open connections, answers how many (vtn.connections)
    close_connections: Callable[[str], int] = field(default=lambda _fingerprint: 0)
    # stored events decoded and their variants as sent, made from the two codecs
    event_cache: EventCache = field(init=False)

    def __post_init__(self) -> None:
        self.event_cache = EventCache(self.store_codec, self.codec.event_cache)

    def encode_for_queue(self, message: Message) -> bytes:
        return self.store_codec.encode(message)

    def queued(self, message: Message, *, dedup_key: str | None = None) -> Queued:
        """``message`` as an outbox item, for a write that queues it in its own transaction
        (the caller wakes push delivery with :attr:`on_enqueued` once that committed)."""
        return Queued(_kind(message), self.encode_for_queue(message), dedup_key)

    async def enqueue(self, ven_ids: Iterable[str], message: Message, *,
                      dedup_key: str | None = None) -> int:
        """Queue ``message`` for the VENs (one transaction) and wake push delivery."""
        vens = tuple(ven_ids)
        item = self.queued(message, dedup_key=dedup_key)
        added = await self.storage.outbox.enqueue(
            vens, item.payload, item.kind, item.dedup_key, at=self.clock()
        )
        self.on_enqueued(vens)
        return added


def _kind(message: Message) -> str:
    return "oadr" + type(message).__name__


async def require_ven(ctx: ServiceContext, peer: Peer, ven_id: str | None) -> VenRegistration:
    """The peer's active registration, if ``ven_id`` (when given) is the peer's venID.

    OpenADR 2.0b security: the venID is bound to the client certificate, so a VEN naming another
    VEN's venID is refused (463) and the other VEN's data stays untouched.
    """
    return bind_ven(await ctx.storage.vens.by_fingerprint(peer.fingerprint), ven_id)


def bind_ven(registration: VenRegistration | None, ven_id: str | None) -> VenRegistration:
    """:func:`require_ven`'s check of a registration already looked up by the peer's
    fingerprint (e.g. together with other state, in one round trip)."""
    if registration is None or not registration.active:
        raise NotRegistered("this certificate has no active registration")
    if ven_id is not None and ven_id != registration.ven_id:
        raise NotRegistered(f"venID {ven_id!r} does not belong to this certificate")
    return registration


