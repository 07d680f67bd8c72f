"""oadrPoll and oadrResponse: the pull transport's request and the generic acknowledgement.

OpenADR 2.0b profile 8.6 (OadrPoll service): a VEN in pull mode sends oadrPoll; the VTN answers with
the next queued payload or with oadrResponse when nothing is queued.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._base import Message
from .parts import EiResponse

__all__ = ["Poll", "Response"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll(Message):
    ven_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Message):
    response: EiResponse
    ven_id: str | None = None
