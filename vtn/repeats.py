"""Per-VEN memory of the last unsigned exchange, so that a repeat costs no XML work.

A polling VEN sends the same oadrPoll bytes every time (it carries only the venID) and mostly gets
the same "nothing for you" back. The VTN therefore decodes a VEN's poll bytes once and reuses the
typed message while the bytes repeat, and encodes a reply once and reuses the bytes while the
reply repeats. A reply that differs from the last of its type only in the requestID its
eiResponse echoes (every oadrUpdatedReport to a reporting VEN, every oadrResponse to its acks)
reuses the bytes with that one element's text swapped.

Only oadrPoll requests are remembered: every other payload carries a requestID the VEN makes new
per request, so it never repeats, and remembering it would only push the VEN's poll out (a fleet
VEN reports and acknowledges between its polls). Of a poll, a 16-byte BLAKE2b digest of its bytes
is kept, not the bytes. Only the replies of a VEN's steady traffic are remembered, one per message
type: oadrResponse (to a poll with nothing queued, to an ack) and oadrUpdatedReport (to a report),
so the answer to a report does not push out the answer to a poll. The rest (the answer to a
registration, to an oadrRegisterReport, to an opt) comes once in a while, so keeping its bytes
per VEN would cost memory for nothing served; a reply with a requestID of its own (an
oadrDistributeEvent, an oadrCreateReport) cannot repeat at all.

Invariants:
- Keys are certificate fingerprints: one VEN's bytes never stand for another's. Two different
  polls of one VEN would have to collide in a 128-bit digest to be taken for each other.
- Only polls that decoded and validated, without a signature, are remembered; a signed request
  carries a fresh nonce and is verified every time.
- Replies are reused only from a codec that does not sign (a signed reply needs a fresh
  ReplayProtect) and only when the new reply equals the remembered one of its type (messages are
  frozen dataclasses compared by value), or equals it once the requestIDs are swapped and both IDs
  are printable ASCII without ``&<>`` (their text is then their bytes) and the old element occurs
  once.
- The table is bounded (``max_vens``); the VEN remembered longest ago is forgotten first.
- ``enabled = False`` turns it off (every request decoded, every reply encoded; for benchmarks
  that must not measure the repeat path); the hit and miss counts say how often it served.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Final, cast

from schemas import EiResponse, Message, Poll, Response, UpdatedReport

__all__ = ["Repeats"]

# Text lxml writes out unchanged: printable ASCII except the characters it escapes.
_PLAIN_ID: Final = re.compile(rb"[ -%'-;=?-~]*")
_REQUEST_ID: Final = b"<pyld:requestID>%b</pyld:requestID>"  # as the codec's NSMAP spells it
_REPEATING: Final = frozenset({Response, UpdatedReport})  # the replies remembered


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


@dataclass(slots=True)
class _Last:
    digest: bytes | None = None  # of the poll's bytes
    request: Message | None = None
    # the last reply of each message type and its bytes
    replies: dict[type, tuple[Message, bytes]] = field(default_factory=dict)


class Repeats:
    __slots__ = ("_by_peer", "enabled", "max_vens", "replies", "requests")

    def __init__(self, max_vens: int = 100_000) -> None:
        if max_vens < 1:
            raise ValueError("max_vens must be positive (turn it off with enabled = False)")
        self.max_vens = max_vens
        self.enabled = True
        self._by_peer: dict[str, _Last] = {}
        self.requests = [0, 0]  # requests served from memory, requests decoded
        self.replies = [0, 0]  # replies served from memory, replies encoded

    def request(self, fingerprint: str, body: bytes) -> Message | None:
        """The message ``body`` decoded to last time, if this VEN sent exactly these bytes."""
        last = self._by_peer.get(fingerprint) if self.enabled else None
        message = None
        if last is not None and last.digest is not None and last.digest == _digest(body):
            message = last.request
        self.requests[message is None] += 1
        return message

    def remember_request(self, fingerprint: str, body: bytes, message: Message) -> None:
        """Remember ``body`` as decoding to ``message`` if it is a poll (see the module
        docstring: nothing else repeats)."""
        if self.enabled and type(message) is Poll:
            last = self._entry(fingerprint)
            last.digest, last.request = _digest(body), message

    def reply(self, fingerprint: str, reply: Message) -> bytes | None:
        """The bytes ``reply`` encodes to, if this VEN's last reply of its type was equal or
        differed only in its eiResponse's requestID."""
        data = self._reply(fingerprint, reply)
        self.replies[data is None] += 1
        return data

    def _reply(self, fingerprint: str, reply: Message) -> bytes | None:
        last = self._by_peer.get(fingerprint) if self.enabled else None
        if last is None or (known := last.replies.get(type(reply))) is None:
            return None
        old, old_bytes = known
        if old == reply:
            return old_bytes
        data = _swap_request_id(old, old_bytes, reply)
        if data is not None:
            last.replies[type(reply)] = reply, data
        return data

    def remember_reply(self, fingerprint: str, reply: Message, data: bytes) -> None:
        """Remember ``data`` as the encoding of ``reply`` if it is an oadrResponse or an
        oadrUpdatedReport (see the module docstring: nothing else repeats)."""
        if self.enabled and type(reply) in _REPEATING:
            self._entry(fingerprint).replies[type(reply)] = reply, data

    def __len__(self) -> int:
        return len(self._by_peer)

    def _entry(self, fingerprint: str) -> _Last:
        last = self._by_peer.get(fingerprint)
        if last is None:
            while len(self._by_peer) >= self.max_vens:  # dicts keep insertion order
                del self._by_peer[next(iter(self._by_peer))]
            last = self._by_peer[fingerprint] = _Last()
        return last


def _swap_request_id(old: Message, old_bytes: bytes, new: Message) -> bytes | None:
    new_response, old_response = getattr(new, "response", None), getattr(old, "response", None)
    if not isinstance(new_response, EiResponse) or not isinstance(old_response, EiResponse):
        return None
    new_id, old_id = new_response.request_id.encode(), old_response.request_id.encode()
    if _PLAIN_ID.fullmatch(new_id) is None or _PLAIN_ID.fullmatch(old_id) is None:
        return None
    rest, response_rest = _fields_but(type(new), "response"), _fields_but(EiResponse, "request_id")
    if rest(new) != rest(old) or response_rest(new_response) != response_rest(old_response):
        return None
    before = _REQUEST_ID % old_id
    if old_bytes.count(before) != 1:
        return None
    return old_bytes.replace(before, _REQUEST_ID % new_id)


_RESTS: dict[tuple[type, str], Callable[[object], tuple[object, ...]]] = {}


def _fields_but(kind: type, name: str) -> Callable[[object], tuple[object, ...]]:
    """A getter of the compared fields of the dataclass ``kind`` but ``name``, and the class, as
    one tuple: equal tuples mean the two values are equal but for ``name``."""
    getter = _RESTS.get((kind, name))
    if getter is None:
        names = (f.name for f in fields(kind) if f.compare and f.name != name)
        getter = _RESTS[kind, name] = cast(Callable[[object], tuple[object, ...]],
                                           attrgetter(*names, "__class__"))
    return getter
