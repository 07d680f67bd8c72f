"""vtn.repeats: a VEN's repeated bytes skip the XML work, and nothing else does."""

from __future__ import annotations

import tracemalloc

import pytest

import vtn.repeats
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


def updated(request_id: str, ven_id: str | None = "ven-1") -> UpdatedReport:
    return UpdatedReport(response=EiResponse(request_id=request_id), ven_id=ven_id)


def test_a_reply_is_reused_as_it_is_while_it_is_equal() -> None:
    repeats = Repeats()
    empty = Response(response=EiResponse(), ven_id="ven-1")
    repeats.remember_reply(empty, b"<encoded/>")
    assert repeats.reply(Response(response=EiResponse(), ven_id="ven-1")) == b"<encoded/>"
    assert repeats.reply(Response(response=EiResponse(code=452), ven_id="ven-1")) is None


@pytest.mark.parametrize(("request_id", "ven_id"), [
    ("upd-2", "ven-1"), ("", "ven-1"), ("a'b\"c;=?~ %", "ven-1"),
    ("upd-1", "ven-2"), ("upd-2", "another VEN;=?~ %"), ("", ""),
])
def test_a_reply_differing_only_in_its_ids_is_the_codec_s_bytes(request_id: str,
                                                               ven_id: str) -> None:
    """Another requestID, another VEN's venID, or both: the remembered encoding with those two
    elements' text swapped, byte for byte what the codec writes."""
    codec, repeats = Codec(), Repeats()
    repeats.remember_reply(updated("upd-1"), codec.encode(updated("upd-1")))
    assert repeats.reply(updated(request_id, ven_id)) == codec.encode(updated(request_id, ven_id))
    # the remembered encoding stays the one swapped from
    assert repeats.reply(updated("upd-3")) == codec.encode(updated("upd-3"))


@pytest.mark.parametrize("reply", [
    updated("a&b"), updated("a<b"), updated("a>b"), updated("caf\u00e9"), updated("a\rb"),
    updated("upd-1", ven_id="v&n"), updated("upd-1", ven_id="v\u00e9n"),
    updated("upd-1", ven_id=None),  # no venID element at all: another shape
    Response(response=EiResponse(request_id="upd-2"), ven_id="ven-1"),  # another message type
    UpdatedReport(response=EiResponse(request_id="upd-2", description="late"), ven_id="ven-1"),
    UpdatedReport(response=EiResponse(request_id="upd-2"), ven_id="ven-1",
                  cancel_report=CancelReport(request_id="upd-1", report_request_ids=("rr",),
                                             ven_id="ven-1")),
])
def test_no_swap_when_more_differs_or_the_text_would_be_escaped(reply: UpdatedReport) -> None:
    codec, repeats = Codec(), Repeats()
    repeats.remember_reply(updated("upd-1"), codec.encode(updated("upd-1")))
    assert repeats.reply(reply) is None


def test_an_escaped_old_id_is_not_swapped_out() -> None:
    codec, repeats = Codec(), Repeats()
    repeats.remember_reply(updated("a&b"), codec.encode(updated("a&b")))
    assert repeats.reply(updated("upd-2")) is None
    repeats.remember_reply(updated("upd-1", "v&n"), codec.encode(updated("upd-1", "v&n")))
    assert repeats.reply(updated("upd-1", "ven-2")) is None


def test_a_venid_that_occurs_twice_is_not_swapped() -> None:
    """A reply whose cancelReport names the same VEN: the venID element is there twice, so no
    single element can be swapped and the reply is encoded afresh."""
    codec, repeats = Codec(), Repeats()
    cancel = CancelReport(request_id="c-1", report_request_ids=("rr",), ven_id="ven-1")
    twice = UpdatedReport(response=EiResponse(request_id="u-1"), ven_id="ven-1",
                          cancel_report=cancel)
    repeats.remember_reply(twice, codec.encode(twice))
    assert repeats.reply(twice) == codec.encode(twice)  # equal: served as it is
    other = UpdatedReport(response=EiResponse(request_id="u-1"), ven_id="ven-2",
                          cancel_report=cancel)
    assert repeats.reply(other) is None


def test_replies_are_remembered_once_for_all_vens_not_per_ven() -> None:
    """The oadrResponse of 1,000 VENs remembered leaves the memo holding one encoding (~1 KB),
    not one per VEN: an idle VEN costs no reply bytes."""
    codec, repeats = Codec(), Repeats()
    replies = [Response(response=EiResponse(), ven_id=f"ven-{n}") for n in range(1000)]
    encoded = [codec.encode(reply) for reply in replies]
    tracemalloc.start()
    try:
        for reply, data in zip(replies, encoded, strict=True):
            if repeats.reply(reply) is None:
                repeats.remember_reply(reply, data)
        del data
        encoded.clear()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert repeats.replies == [999, 1]
    assert held < 4 * len(codec.encode(replies[0])), held


def test_the_reply_shapes_remembered_are_bounded() -> None:
    codec, repeats = Codec(), Repeats()
    for code in range(200, 300):
        reply = Response(response=EiResponse(code=code), ven_id="ven-1")
        repeats.remember_reply(reply, codec.encode(reply))
    oldest = Response(response=EiResponse(code=200), ven_id="ven-1")
    newest = Response(response=EiResponse(code=299), ven_id="ven-1")
    assert repeats.reply(oldest) is None
    assert repeats.reply(newest) == codec.encode(newest)


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
    repeats.remember_reply(empty, b"<encoded/>")
    assert repeats.request("AA:01", BODY) is POLL and repeats.request("AA:02", BODY) is None
    assert repeats.reply(empty) == b"<encoded/>"
    assert (repeats.requests, repeats.replies) == ([1, 1], [1, 0])
    repeats.enabled = False
    assert repeats.request("AA:01", BODY) is None and repeats.reply(empty) is None
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


def test_only_the_replies_of_steady_traffic_are_remembered_per_shape() -> None:
    codec, repeats = Codec(), Repeats()
    empty = Response(response=EiResponse(), ven_id="ven-1")
    repeats.remember_reply(empty, codec.encode(empty))
    repeats.remember_reply(updated("upd-1"), codec.encode(updated("upd-1")))
    cancel = CancelReport(request_id="c-1", report_request_ids=("rr",), ven_id="ven-1")
    repeats.remember_reply(cancel, codec.encode(cancel))
    # the answer to a report did not push out the answer to a poll, nor the other way round
    assert repeats.reply(empty) == codec.encode(empty)
    assert repeats.reply(updated("upd-2")) == codec.encode(updated("upd-2"))
    acked = Response(response=EiResponse(request_id="ack-1"), ven_id="ven-2")
    assert repeats.reply(acked) == codec.encode(acked)
    assert repeats.reply(cancel) is None
    registered = CreatedPartyRegistration(
        response=EiResponse(request_id="reg-1"), vtn_id="vtn",
        profiles=(Profile(profile_name=ProfileName.OADR_20B,
                          transports=(TransportName.SIMPLE_HTTP,)),))
    repeats.remember_reply(registered, codec.encode(registered))
    assert repeats.reply(registered) is None  # once per registration: not kept


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


def test_a_request_of_another_length_than_the_poll_is_not_hashed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A VEN's report (ten times a poll's size) is told apart from its poll by its length alone;
    bytes of the poll's length are told apart by their digest."""
    repeats = Repeats()
    repeats.remember_request("AA:01", BODY, POLL)
    hashed: list[bytes] = []
    monkeypatch.setattr(vtn.repeats, "_digest", lambda body: hashed.append(body) or b"")
    assert repeats.request("AA:01", BODY + b"<report/>") is None
    assert hashed == []
    monkeypatch.undo()
    same_length = BODY[:-1] + (b"?" if BODY[-1:] != b"?" else b"!")
    assert repeats.request("AA:01", same_length) is None
    assert repeats.request("AA:01", BODY) is POLL
