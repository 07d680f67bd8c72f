"""vtn.repeats: a VEN's repeated bytes skip the XML work, and nothing else does."""

from __future__ import annotations

from schemas import EiResponse, Poll, Response
from vtn.repeats import Repeats

POLL = Poll(ven_id="ven-1")
BODY = b"<oadrPoll venID='ven-1'/>"  # the memo keys on bytes; it never parses them


def test_the_same_bytes_from_the_same_ven_give_the_remembered_message() -> None:
    repeats = Repeats()
    assert repeats.request("AA:01", BODY) is None
    repeats.remember_request("AA:01", BODY, POLL)
    assert repeats.request("AA:01", BODY) is POLL


def test_other_bytes_or_another_ven_are_decoded_afresh() -> None:
    repeats = Repeats()
    repeats.remember_request("AA:01", BODY, POLL)
    assert repeats.request("AA:01", BODY + b" ") is None
    assert repeats.request("AA:02", BODY) is None  # same bytes, other certificate


def test_a_reply_is_reused_only_while_it_is_equal() -> None:
    repeats = Repeats()
    empty = Response(response=EiResponse(), ven_id="ven-1")
    repeats.remember_reply("AA:01", empty, b"<encoded/>")
    assert repeats.reply("AA:01", Response(response=EiResponse(), ven_id="ven-1")) == b"<encoded/>"
    assert repeats.reply("AA:01", Response(response=EiResponse(), ven_id="ven-2")) is None
    assert repeats.reply("AA:02", empty) is None


def test_the_table_is_bounded_and_forgets_the_oldest_ven_first() -> None:
    repeats = Repeats(max_vens=2)
    for n in range(3):
        repeats.remember_request(f"AA:0{n}", BODY, POLL)
    assert len(repeats) == 2
    assert repeats.request("AA:00", BODY) is None
    assert repeats.request("AA:02", BODY) is POLL
