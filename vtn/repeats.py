"""Memory of repeated unsigned exchanges, so that a repeat costs no XML work.

A polling VEN sends the same oadrPoll bytes every time (it carries only the venID) and mostly gets
the same "nothing for you" back. The VTN therefore decodes a VEN's poll bytes once and reuses the
typed message while the bytes repeat, and encodes a reply once and reuses its bytes for every
reply that differs from it only in the requestID its eiResponse echoes and the venID it names
(the oadrResponse to every VEN's poll and ack, the oadrUpdatedReport to every VEN's report), with
those two elements' text swapped.

Only oadrPoll requests are remembered, per VEN: every other payload carries a requestID the VEN
makes new per request, so it never repeats, and remembering it would only push the VEN's poll out
(a fleet VEN reports and acknowledges between its polls). Of a poll, its length and a 16-byte
BLAKE2b digest of its bytes are kept, not the bytes; a request of another length is not hashed
(a minute's report is ten times a poll's size). Replies are remembered once for all VENs, not
per VEN (an idle VEN costs no reply bytes): one encoding per shape (message type and every field
but the requestID and the venID), of the replies of steady traffic only: oadrResponse (to a poll
with nothing queued, to an ack) and oadrUpdatedReport (to a report). The rest (the answer to a
registration, to an oadrRegisterReport, to an opt) comes once in a while; a reply with a
requestID of its own (an oadrDistributeEvent, an oadrCreateReport) cannot repeat at all.

Invariants:
- Polls are keyed by certificate fingerprint: one VEN's poll bytes never stand for another's. Two
  different polls of one VEN would have to collide in a 128-bit digest to be taken for each
  other.
- Only polls that decoded and validated, without a signature, are remembered; a signed request
  carries a fresh nonce and is verified every time.
- Replies are reused only from a codec that does not sign (a signed reply needs a fresh
  ReplayProtect), only for a reply whose every other field equals the remembered one's (messages
  are frozen dataclasses compared by value), and only when each swapped ID is printable ASCII
  without ``&<>`` (its text is then its bytes) and each replaced element occurs once: the bytes
  served are the bytes the codec would write for that reply.
- Both tables are bounded (``max_vens`` polls, :data:`_SHAPES` reply shapes); the entry
  remembered longest ago is forgotten first.
- ``enabled = False`` turns it off (every request decoded, every reply encoded; for benchmarks
  that must not measure the repeat path); the hit and miss counts say how often it served.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Final, TypeVar, cast

from schemas import EiResponse, Message, Poll, Response, UpdatedReport

__all__ = ["Repeats"]

# Text lxml writes out unchanged: printable ASCII except the characters it escapes.
_PLAIN_ID: Final = re.compile(r"[ -%'-;=?-~]*")
# the swapped elements, as the codec's NSMAP spells them
_REQUEST_ID: Final = "<pyld:requestID>%s</pyld:requestID>"
_VEN_ID: Final = "<ei:venID>%s</ei:venID>"
_REPEATING: Final = (Response, UpdatedReport)  # the replies remembered
_SHAPES: Final = 64  # reply shapes remembered (a fleet's steady traffic has a handful)


_K = TypeVar("_K")
_V = TypeVar("_V")


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


class Repeats:
    __slots__ = ("_polls", "_replies", "enabled", "max_vens", "replies", "requests")

    def __init__(self, max_vens: int = 100_000) -> None:
        if max_vens < 1:
            raise ValueError("max_vens must be positive (turn it off with enabled = False)")
        self.max_vens = max_vens
        self.enabled = True
        # by fingerprint: the poll's length, digest and message
        self._polls: dict[str, tuple[int, bytes, Message]] = {}
        # by shape: the requestID and venID of the reply encoded, and its bytes
        self._replies: dict[tuple[object, ...], tuple[str, str | None, bytes]] = {}
        self.requests = [0, 0]  # requests served from memory, requests decoded
        self.replies = [0, 0]  # replies served from memory, replies encoded

    def request(self, fingerprint: str, body: bytes) -> Message | None:
        """The message ``body`` decoded to last time, if this VEN sent exactly these bytes."""
        last = self._polls.get(fingerprint) if self.enabled else None
        message = (last[2] if last is not None and last[0] == len(body)
                   and last[1] == _digest(body) else None)
        self.requests[message is None] += 1
        return message

    def remember_request(self, fingerprint: str, body: bytes, message: Message) -> None:
        """Remember ``body`` as decoding to ``message`` if it is a poll (see the module
        docstring: nothing else repeats)."""
        if self.enabled and type(message) is Poll:
            _remember(self._polls, fingerprint, (len(body), _digest(body), message),
                      self.max_vens)

    def reply(self, reply: Message) -> bytes | None:
        """The bytes ``reply`` encodes to, if a reply of its shape was remembered (equal but for
        its eiResponse's requestID and its venID)."""
        data = self._reply(reply) if self.enabled and isinstance(reply, _REPEATING) else None
        self.replies[data is None] += 1
        return data

    def _reply(self, reply: Response | UpdatedReport) -> bytes | None:
        known = self._replies.get(_shape(reply))
        if known is None:
            return None
        old_request_id, old_ven_id, remembered = known
        request_id, ven_id = _ids(reply)
        data: bytes | None = remembered
        if request_id != old_request_id:
            data = _swap(remembered, _REQUEST_ID, old_request_id, request_id)
        if data is not None and ven_id != old_ven_id:
            assert ven_id is not None and old_ven_id is not None  # both in the shape
            data = _swap(data, _VEN_ID, old_ven_id, ven_id)
        return data

    def remember_reply(self, reply: Message, data: bytes) -> None:
        """Remember ``data`` as the encoding of ``reply`` if it is an oadrResponse or an
        oadrUpdatedReport (see the module docstring: nothing else repeats)."""
        if self.enabled and isinstance(reply, _REPEATING):
            _remember(self._replies, _shape(reply), (*_ids(reply), data), _SHAPES)

    def __len__(self) -> int:
        """VENs whose poll is remembered."""
        return len(self._polls)


def _remember(table: dict[_K, _V], key: _K, value: _V, bound: int) -> None:
    table.pop(key, None)
    while len(table) >= bound:  # dicts keep insertion order
        del table[next(iter(table))]
    table[key] = value


def _ids(reply: Response | UpdatedReport) -> tuple[str, str | None]:
    return reply.response.request_id, reply.ven_id


def _shape(reply: Response | UpdatedReport) -> tuple[object, ...]:
    """The reply's fields but its eiResponse's requestID and its venID (whether it has one is
    part of it), and its class: equal shapes encode alike but for those two elements' text."""
    return (_fields_but(type(reply), ("response", "ven_id"))(reply),
            _fields_but(EiResponse, ("request_id",))(reply.response),
            reply.ven_id is None)


def _swap(data: bytes, element: str, old: str, new: str) -> bytes | None:
    """``data`` with ``element`` around ``old`` made around ``new``; None unless both are plain
    text and the old element occurs exactly once."""
    if _PLAIN_ID.fullmatch(old) is None or _PLAIN_ID.fullmatch(new) is None:
        return None
    before = (element % old).encode()
    if data.count(before) != 1:
        return None
    return data.replace(before, (element % new).encode())


_RESTS: dict[tuple[type, tuple[str, ...]], Callable[[object], tuple[object, ...]]] = {}


def _fields_but(kind: type, names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """A getter of the compared fields of the dataclass ``kind`` but ``names``, and the class,
    as one tuple: equal tuples mean the two values are equal but for ``names``."""
    getter = _RESTS.get((kind, names))
    if getter is None:
        kept = (f.name for f in fields(kind) if f.compare and f.name not in names)
        getter = _RESTS[kind, names] = cast(Callable[[object], tuple[object, ...]],
                                            attrgetter(*kept, "__class__"))
    return getter
