"""The encoder's memory of oadrEvent builds, so a fan-out builds each event once, not per VEN.

An :class:`~schemas.events.Event` is plain data; what is derived from one for encoding lives
here, in an :class:`EventEncodeCache` owned by whoever encodes (each :class:`~schemas.Codec` has
one, ``Codec.event_cache``). It remembers three things about the Event objects it is shown:

- **status variants**: :meth:`EventEncodeCache.with_status` returns one object per (event,
  status), so VENs that receive an event at the same status receive the same object;
- **retargeted variants**: :meth:`EventEncodeCache.with_target` remembers which event a variant
  was made from; the variant is then encoded as a copy of that event's build without targets,
  given its own eiTarget (the last child of ei:eiEvent), so a fan-out that sends each VEN only its
  own venID builds one event, not 500;
- **builds**: the first encoding of an Event object keeps a copy of its oadrEvent element; later
  ones append a C-level copy of it instead of building (an event targeting 500 VENs takes ~1.7 ms
  to build and ~0.2 ms to copy; parsing kept bytes back measured slower). The copy declares the
  same prefixes as our envelope, which lxml drops as redundant when it is appended, so the output
  is byte for byte that of a fresh build (tests/schemas/test_event_encode_cache.py).

Invariants: entries are keyed by object identity and hold their Event, so an ``id()`` is never
reused while its entry exists, and equal but distinct objects never share a build. Builds are kept
per thread, because lxml trees must not be shared across threads. Each table keeps at most
``kept`` entries, the oldest dropped first; a dropped entry costs a rebuild, never a wrong byte.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from threading import get_ident
from typing import Final, Generic, TypeVar

from lxml import etree

from ._event_parts_xml import build_event
from ._wire import copy_tree
from .events import Event, EventStatus
from .parts import Target, encode_target

__all__ = ["EventEncodeCache"]

#: entries each table of an :class:`EventEncodeCache` keeps by default
KEPT: Final = 1024

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


class _Table(Generic[_Key, _Value]):
    """A bounded map whose entries belong to one Event object each (oldest dropped first)."""

    def __init__(self, kept: int) -> None:
        self._kept = kept
        # OrderedDict: dropping a plain dict's oldest key scans the deleted slots before it
        self._entries: OrderedDict[_Key, tuple[Event, _Value]] = OrderedDict()

    def get(self, key: _Key, owner: Event) -> _Value | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] is owner else None

    def put(self, key: _Key, owner: Event, value: _Value) -> _Value:
        if len(self._entries) >= self._kept:
            self._entries.popitem(last=False)
        self._entries[key] = (owner, value)
        return value


class EventEncodeCache:
    """What an encoder remembers of the events it encoded (see the module docstring)."""

    def __init__(self, kept: int = KEPT) -> None:
        self._statuses: _Table[tuple[int, EventStatus], Event] = _Table(kept)
        self._origins: _Table[int, Event] = _Table(kept)
        # (thread, event, without targets?) -> a copy of the built oadrEvent element
        self._builds: _Table[tuple[int, int, bool], etree._Element] = _Table(kept)

    def with_status(self, event: Event, status: EventStatus) -> Event:
        """``event`` with ``eventStatus`` = ``status`` (itself when it already has it); asked
        again, the same object comes back, so its build is reused too."""
        if event.descriptor.event_status is status:
            return event
        variant = self._statuses.get((id(event), status), event)
        if variant is None:
            variant = replace(event, descriptor=replace(event.descriptor, event_status=status))
            origin = self._origins.get(id(event), event)
            if origin is not None:  # still only the target differs from the origin's variant
                self._origins.put(id(variant), variant, self.with_status(origin, status))
            self._statuses.put((id(event), status), event, variant)
        return variant

    def with_target(self, event: Event, target: Target) -> Event:
        """``event`` addressed to ``target`` instead (itself when it already is), encoded from
        ``event``'s build without targets plus its own eiTarget."""
        if target == event.target:
            return event
        variant = replace(event, target=target)
        self._origins.put(id(variant), variant, event)
        return variant

    def append(self, parent: etree._Element, event: Event) -> None:
        """Append ``event``'s ``oadr:oadrEvent`` to ``parent``, built or copied."""
        thread = get_ident()
        built = self._builds.get((thread, id(event), False), event)
        if built is not None:
            parent.append(copy_tree(built))
            return
        origin = self._origins.get(id(event), event)
        if origin is None:
            self._builds.put((thread, id(event), False), event,
                             copy_tree(build_event(parent, event)))
            return
        untargeted = self._builds.get((thread, id(origin), True), origin)
        if untargeted is None:
            holder = build_event(parent, replace(origin, target=Target()))
            untargeted = self._builds.put((thread, id(origin), True), origin, copy_tree(holder))
            parent.remove(holder)
        holder = copy_tree(untargeted)
        parent.append(holder)
        element = holder[0]
        element.remove(element[-1])
        encode_target(element, event.target)
