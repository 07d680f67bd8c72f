"""Per-VEN memory of the last unsigned exchange, so that a repeat costs no XML work.

A polling VEN sends the same oadrPoll bytes every time (it carries only the venID) and mostly gets
the same "nothing for you" back. The VTN therefore decodes a VEN's request bytes once and reuses
the typed message while the bytes repeat, and encodes a reply once and reuses the bytes while the
reply repeats.

Invariants:
- Keys are certificate fingerprints: one VEN's bytes never stand for another's.
- Only requests that decoded and validated, without a signature, are remembered; a signed request
  carries a fresh nonce and is verified every time.
- Replies are reused only from a codec that does not sign (a signed reply needs a fresh
  ReplayProtect) and only when the new reply equals the remembered one (messages are frozen
  dataclasses compared by value).
- The table is bounded (``max_vens``); the VEN remembered longest ago is forgotten first.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import Message

__all__ = ["Repeats"]


@dataclass(slots=True)
class _Last:
    body: bytes | None = None
    request: Message | None = None
    reply: Message | None = None
    reply_bytes: bytes = b""


class Repeats:
    __slots__ = ("_by_peer", "max_vens")

    def __init__(self, max_vens: int = 100_000) -> None:
        self.max_vens = max_vens
        self._by_peer: dict[str, _Last] = {}

    def request(self, fingerprint: str, body: bytes) -> Message | None:
        """The message ``body`` decoded to last time, if this VEN sent exactly these bytes."""
        last = self._by_peer.get(fingerprint)
        return last.request if last is not None and last.body == body else None

    def remember_request(self, fingerprint: str, body: bytes, message: Message) -> None:
        last = self._entry(fingerprint)
        last.body, last.request = body, message

    def reply(self, fingerprint: str, reply: Message) -> bytes | None:
        """The bytes ``reply`` was encoded to last time, if this VEN's last reply was equal."""
        last = self._by_peer.get(fingerprint)
        return last.reply_bytes if last is not None and last.reply == reply else None

    def remember_reply(self, fingerprint: str, reply: Message, data: bytes) -> None:
        last = self._entry(fingerprint)
        last.reply, last.reply_bytes = reply, data

    def __len__(self) -> int:
        return len(self._by_peer)

    def _entry(self, fingerprint: str) -> _Last:
        last = self._by_peer.get(fingerprint)
        if last is None:
            while len(self._by_peer) >= self.max_vens:  # dicts keep insertion order
                del self._by_peer[next(iter(self._by_peer))]
            last = self._by_peer[fingerprint] = _Last()
        return last
