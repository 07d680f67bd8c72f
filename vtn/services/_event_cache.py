"""The event service's cache of derived events, so a fan-out derives each event once, not per VEN.

Building each VEN's list in a fan-out to hundreds of VENs would otherwise parse and validate the
same stored bytes, and make the same addressed variant, once per VEN. :class:`EventCache` keeps:

- stored events decoded, by (eventID, modificationNumber): the pair names one payload for good
  (storage refuses other content under it), and the payload is compared on every hit anyway.
  An event just published is remembered with the payload encoded from it
  (:meth:`EventCache.remember`), so sending it parses nothing; and storage, building a VEN's
  list, takes the payload of a version held here (:meth:`EventCache.held`) instead of reading
  it again;
- the variants VENs addressed alike (through the same group, resource or party entries) share,
  by (eventID, modificationNumber, eventStatus, target), one object each so its XML is built once;
- the status and per-VEN target variants, through the encoding codec's
  :class:`~schemas.EventEncodeCache`, which then encodes them from one build;
- where each value of a stored eiTarget sits, by the Target object, so cutting an event's
  target down to one VEN's entries (:meth:`EventCache.narrowed`) costs that VEN's few entries,
  not a scan of the whole target: an event for 1000 VENs by venID names 1000 of them.

Invariants: each table keeps at most ``kept`` entries, the oldest dropped first; a dropped entry
costs a decode or a build again, never a different event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final, TypeVar

from schemas import Codec, DistributeEvent, Event, EventEncodeCache, EventStatus, Target
from vtn.storage import EventRecord, TargetKind, TargetRef

__all__ = ["EventCache"]

#: decoded events and shared variants an :class:`EventCache` keeps by default: an aggregator's
#: dispatch to 929 devices publishes 929 events, each sent next (the encoder's builds keep 1024)
KEPT: Final = 1024

#: the eiTarget fields, each with the kind of target its values are
_FIELDS: Final = (("group_ids", TargetKind.GROUP), ("group_names", TargetKind.GROUP),
                 ("resource_ids", TargetKind.RESOURCE), ("ven_ids", TargetKind.VEN),
                 ("party_ids", TargetKind.PARTY))

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")
#: per field of one Target: value -> the positions it holds there
_Places = tuple[dict[str, tuple[int, ...]], ...]


class EventCache:
    """Decoded stored events and their variants as sent (see the module docstring)."""

    def __init__(self, store_codec: Codec, encoding: EventEncodeCache, kept: int = KEPT) -> None:
        self._store_codec = store_codec
        self._encoding = encoding
        self._kept = kept
        # (eventID, modificationNumber) -> the payload, its updated_at and the event it encodes
        self._decoded: dict[tuple[str, int], tuple[bytes, datetime, Event]] = {}
        self._shared: dict[tuple[str, int, EventStatus, Target], Event] = {}
        # by id(): hashing a Target hashes all its values; the entry holds its Target, so the
        # id is not reused while the entry exists
        self._places: dict[int, tuple[Target, _Places]] = {}

    def decoded(self, record: EventRecord) -> Event:
        """The event stored in ``record``."""
        key = (record.event_id, record.modification_number)
        cached = self._decoded.get(key)
        if cached is not None and cached[0] == record.payload:
            return cached[2]
        message = self._store_codec.decode(record.payload)
        assert isinstance(message, DistributeEvent) and len(message.events) == 1
        self.remember(record, message.events[0])
        return message.events[0]

    def remember(self, record: EventRecord, event: Event) -> None:
        """``record`` stores ``event`` (its payload encodes it): :meth:`decoded` returns it."""
        self._keep(self._decoded, (record.event_id, record.modification_number),
                   (record.payload, record.updated_at, event))

    def held(self, event_id: str, modification_number: int, updated_at: datetime) -> bytes | None:
        """The payload of the stored version remembered here, or None (a
        :data:`vtn.storage.backend.Held`: storage may call it from its own threads)."""
        cached = self._decoded.get((event_id, modification_number))
        return cached[0] if cached is not None and cached[1] == updated_at else None

    def addressed(self, event: Event, target: Target, *, personal: bool) -> Event:
        """``event`` with eiTarget ``target``: one object per (event, version, status, target)
        unless ``personal`` (a VEN's own venID: nobody else receives the same object)."""
        if personal:
            return self._encoding.with_target(event, target)
        key = (event.event_id, event.modification_number, event.descriptor.event_status, target)
        shared = self._shared.get(key)
        if shared is None:
            shared = self._encoding.with_target(event, target)
            self._keep(self._shared, key, shared)
        return shared

    def narrowed(self, target: Target, refs: Iterable[TargetRef]) -> Target:
        """``target`` with only the entries ``refs`` name, in ``target``'s order (a value
        listed twice stays twice)."""
        cached = self._places.get(id(target))
        if cached is not None and cached[0] is target:
            places = cached[1]
        else:
            places = tuple(_positions(getattr(target, name)) for name, _ in _FIELDS)
            self._keep(self._places, id(target), (target, places))
        wanted: dict[TargetKind, set[str]] = {}
        for ref in refs:
            wanted.setdefault(ref.kind, set()).add(ref.value)
        kept: dict[str, tuple[str, ...]] = {}
        for (name, kind), where in zip(_FIELDS, places, strict=True):
            mine = wanted.get(kind)
            if not (mine and where):
                continue
            found: list[int] = []
            for value in mine:
                found += where.get(value, ())
            found.sort()
            kept[name] = tuple(map(getattr(target, name).__getitem__, found))
        return Target(**kept)

    def with_status(self, event: Event, status: EventStatus) -> Event:
        """``event`` at ``status``, one object per (event object, status)."""
        return self._encoding.with_status(event, status)

    def _keep(self, table: dict[_Key, _Value], key: _Key, value: _Value) -> None:
        if len(table) >= self._kept:
            del table[next(iter(table))]
        table[key] = value


def _positions(values: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    where: dict[str, list[int]] = {}
    for n, value in enumerate(values):
        where.setdefault(value, []).append(n)
    return {value: tuple(at) for value, at in where.items()}
