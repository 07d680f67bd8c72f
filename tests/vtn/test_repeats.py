"""vtn.repeats: a VEN's repeated bytes skip the XML work, and nothing else does."""

from __future__ import annotations

import tracemalloc

import pytest

from schemas import (
    CancelReport,
    Codec,
    CreatedPartyRegistration,
    EiResponse,
    Poll,
    Profile,
    ProfileName,
    Response,
    TransportName,
    UpdatedReport,
)
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


def updated(request_id: str, ven_id: str = "ven-1") -> UpdatedReport:
    return UpdatedReport(response=EiResponse(request_id=request_id), ven_id=ven_id)


@pytest.mark.parametrize("request_id", ["upd-2", "", "a'b\"c;=?~ %"])
def test_a_reply_differing_only_in_its_request_id_is_the_codec_s_bytes(request_id: str) -> None:
    codec, repeats = Codec(), Repeats()
    repeats.remember_reply("AA:01", updated("upd-1"), codec.encode(updated("upd-1")))
    assert repeats.reply("AA:01", updated(request_id)) == codec.encode(updated(request_id))
    # the swapped reply is now the one remembered, and swaps again
    assert repeats.reply("AA:01", updated("upd-3")) == codec.encode(updated("upd-3"))


@pytest.mark.parametrize("reply", [
    updated("a&b"), updated("a<b"), updated("a>b"), updated("caf\u00e9"), updated("a\rb"),
    updated("upd-2", ven_id="ven-2"),  # another difference besides the requestID
    Response(response=EiResponse(request_id="upd-2"), ven_id="ven-1"),  # another message type
    UpdatedReport(response=EiResponse(request_id="upd-2"), ven_id="ven-1",
                  cancel_report=CancelReport(request_id="upd-1", report_request_ids=("rr",),
                                             ven_id="ven-1")),
])
def test_no_swap_when_more_differs_or_the_text_would_be_escaped(reply: UpdatedReport) -> None:
    codec, repeats = Codec(), Repeats()
    repeats.remember_reply("AA:01", updated("upd-1"), codec.encode(updated("upd-1")))
    assert repeats.reply("AA:01", reply) is None


def test_an_escaped_old_request_id_is_not_swapped_out() -> None:
    codec, repeats = Codec(), Repeats()
    repeats.remember_reply("AA:01", updated("a&b"), codec.encode(updated("a&b")))
    assert repeats.reply("AA:01", updated("upd-2")) is None


def test_the_table_is_bounded_and_forgets_the_oldest_ven_first() -> None:
    repeats = Repeats(max_vens=2)
    for n in range(3):
        repeats.remember_request(f"AA:0{n}", BODY, POLL)
    assert len(repeats) == 2
    assert repeats.request("AA:00", BODY) is None
    assert repeats.request("AA:02", BODY) is POLL


def test_turned_off_it_serves_nothing_and_counts_what_it_served() -> None:
    repeats = Repeats()
    empty = Response(response=EiResponse(), ven_id="ven-1")
    repeats.remember_request("AA:01", BODY, POLL)
    repeats.remember_reply("AA:01", empty, b"<encoded/>")
    assert repeats.request("AA:01", BODY) is POLL and repeats.request("AA:02", BODY) is None
    assert repeats.reply("AA:01", empty) == b"<encoded/>"
    assert (repeats.requests, repeats.replies) == ([1, 1], [1, 0])
    repeats.enabled = False
    assert repeats.request("AA:01", BODY) is None and repeats.reply("AA:01", empty) is None
    repeats.remember_request("AA:03", BODY, POLL)
    assert len(repeats) == 1  # nothing new remembered either
    assert (repeats.requests, repeats.replies) == ([1, 2], [1, 1])
    with pytest.raises(ValueError, match="max_vens"):
        Repeats(max_vens=0)


def test_only_polls_are_remembered_so_a_report_between_polls_leaves_the_poll() -> None:
    repeats = Repeats()
    repeats.remember_request("AA:01", BODY, POLL)
    report = b"<oadrUpdateReport/>"
    repeats.remember_request("AA:01", report, updated("upd-1"))
    assert repeats.request("AA:01", report) is None
    assert repeats.request("AA:01", BODY) is POLL


def test_only_the_replies_of_steady_traffic_are_remembered_per_type() -> None:
    codec, repeats = Codec(), Repeats()
    empty = Response(response=EiResponse(), ven_id="ven-1")
    repeats.remember_reply("AA:01", empty, codec.encode(empty))
    repeats.remember_reply("AA:01", updated("upd-1"), codec.encode(updated("upd-1")))
    cancel = CancelReport(request_id="c-1", report_request_ids=("rr",), ven_id="ven-1")
    repeats.remember_reply("AA:01", cancel, codec.encode(cancel))
    # the answer to a report did not push out the answer to a poll, nor the other way round
    assert repeats.reply("AA:01", empty) == codec.encode(empty)
    assert repeats.reply("AA:01", updated("upd-2")) == codec.encode(updated("upd-2"))
    acked = Response(response=EiResponse(request_id="ack-1"), ven_id="ven-1")
    assert repeats.reply("AA:01", acked) == codec.encode(acked)
    assert repeats.reply("AA:01", cancel) is None
    registered = CreatedPartyRegistration(
        response=EiResponse(request_id="reg-1"), vtn_id="vtn",
        profiles=(Profile(profile_name=ProfileName.OADR_20B,
                          transports=(TransportName.SIMPLE_HTTP,)),))
    repeats.remember_reply("AA:01", registered, codec.encode(registered))
    assert repeats.reply("AA:01", registered) is None  # once per registration: not kept


def test_a_poll_is_remembered_by_a_digest_of_its_bytes_not_the_bytes() -> None:
    """A 1 MB poll remembered leaves the memo holding well under a kilobyte of it."""
    repeats = Repeats()
    tracemalloc.start()
    try:
        body = BODY + b" " * 1_000_000
        repeats.remember_request("AA:01", body, POLL)
        assert repeats.request("AA:01", body) is POLL
        assert repeats.request("AA:01", body + b" ") is None
        del body
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1024
