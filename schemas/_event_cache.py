"""The encoder's memory of oadrEvent builds, so a fan-out builds each event once, not per VEN.

An :class:`~schemas.events.Event` is plain data; what is derived from one for encoding lives
here, in an :class:`EventEncodeCache` owned by whoever encodes (each :class:`~schemas.Codec` has
one, ``Codec.event_cache``). It remembers three things about the Event objects it is shown:

- **status variants**: :meth:`EventEncodeCache.with_status` returns one object per (event,
  status), so VENs that receive an event at the same status receive the same object;
- **retargeted variants**: :meth:`EventEncodeCache.with_target` remembers which event a variant
  was made from; the variant is then encoded as that event's text without targets around its
  own eiTarget (the last child of ei:eiEvent), so a fan-out that sends each VEN only its own
  venID writes one event, not 500;
- **builds**: the text of each oadrEvent it wrote (:func:`~schemas._event_parts_xml.event_texts`:
  the text before the eiTarget and after it); a later encoding of the same Event object appends
  that text instead of writing the event again. A build and a reuse are the same three strings
  joined, so the output is byte for byte that of a fresh encoding
  (tests/schemas/test_event_encode_cache.py).

Invariants: entries are keyed by object identity and hold their Event, so an ``id()`` is never
reused while its entry exists, and equal but distinct objects never share a build. Builds are
immutable strings, so threads share them. Each table keeps at most ``kept`` entries, the oldest
dropped first; a dropped entry costs a rebuild, never a wrong byte.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Final, Generic, TypeVar

from ._event_parts_xml import event_texts, target_text
from ._writer import Node
from .events import Event, EventStatus
from .parts import Target

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
        # event -> its oadrEvent's text before and after its eiTarget, and the whole text
        self._parts: _Table[int, tuple[str, str]] = _Table(kept)
        self._builds: _Table[int, str] = _Table(kept)

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

    def append(self, parent: Node, event: Event) -> None:
        """Append ``event``'s ``oadr:oadrEvent`` to ``parent``, written or reused."""
        built = self._builds.get(id(event), event)
        if built is None:
            origin = self._origins.get(id(event), event) or event
            parts = self._parts.get(id(origin), origin)
            if parts is None:
                parts = self._parts.put(id(origin), origin, event_texts(origin))
            head, tail = parts
            built = self._builds.put(id(event), event, head + target_text(event.target) + tail)
        parent.parts.append(built)
