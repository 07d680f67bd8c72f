"""VenClient against a scripted in-test VTN over real mutual TLS, and what it receives in memory."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from aiohttp import web

from schemas import (
    Availability,
    CanceledOpt,
    CanceledPartyRegistration,
    CancelOpt,
    CancelPartyRegistration,
    CreatedEvent,
    CreatedOpt,
    CreateOpt,
    CreatePartyRegistration,
    EiResponse,
    Event,
    InvalidData,
    Message,
    OptReason,
    OptType,
    Poll,
    RegisteredReport,
    RegisterReport,
    RequestEvent,
    RequestReregistration,
    Response,
)
from tests.kit.net import free_port
from tests.kit.pki import Pki
from tests.ven.scripts import registered
from ven import (
    Backoff,
    Connection,
    Hooks,
    TimeSource,
    VenClient,
    VenError,
    VenSettings,
    VtnRefused,
    VtnUnavailable,
)

from .conftest import REGISTRATION_ID, VEN_ID, Script, ok, scripted_vtn
from .scripts import T0, default_script, distribute, event

FAST = Backoff(base=0.001, cap=0.004)


async def test_stale_and_repeated_event_copies_are_ignored(pki: Pki) -> None:
    seen: list[tuple[str, int]] = []

    async def on_event(incoming: Event) -> str:  # async handlers and plain strings both work
        seen.append((incoming.event_id, incoming.modification_number))
        return "optOut" if incoming.event_id == "e2" else "optIn"

    async with VenClient(VenSettings(
            ven_name="v", connection=Connection(vtn_url="https://127.0.0.1:9", ssl_context=None),
            hooks=Hooks(on_event=on_event))) as ven:
        registered(ven)
        first = await ven.receive(distribute(event("e1", 2), event("e2", 0)))
        again = await ven.receive(distribute(event("e1", 2), event("e2", 0)))
        stale = await ven.receive(distribute(event("e1", 1), event("e2", 0)))
        newer = await ven.receive(distribute(event("e1", 3), event("e3", 0, required=False)))

    assert isinstance(first.reply, CreatedEvent)
    assert [(r.event_id, r.modification_number, r.opt_type) for r in
            first.reply.event_responses] == [("e1", 2, OptType.OPT_IN), ("e2", 0, OptType.OPT_OUT)]
    assert again.reply is None and stale.reply is None
    assert isinstance(newer.reply, CreatedEvent)
    assert [r.event_id for r in newer.reply.event_responses] == ["e1"]  # e3 needs no answer
    assert seen == [("e1", 2), ("e2", 0), ("e1", 3), ("e3", 0)]
    assert set(ven.events) == {"e1", "e3"}  # e2 left the complete set


async def test_poll_loop_polls_again_at_once_while_the_vtn_has_more(pki: Pki) -> None:
    queue: list[Message] = [
        distribute(event("e1", 0)),
        RegisterReport(request_id="vtn-offer", ven_id=VEN_ID),
        distribute(event("e1", 1), request_id="dist-2"),
    ]
    drained = asyncio.Event()

    def watch(service: str, message: Message) -> None:
        if isinstance(message, Poll) and not queue:
            drained.set()

    async with scripted_vtn(pki.server_context(), default_script(queue, extra=watch)) as vtn, \
            VenClient(VenSettings(
                ven_name="v",
                connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context(),
                                      poll_interval=60, backoff=FAST),
                hooks=Hooks(on_event=lambda e: OptType.OPT_IN))) as ven:
        ven.start_polling()
        async with asyncio.timeout(10):
            await drained.wait()

    sent = [(service, type(message).__name__) for service, message in vtn.received]
    assert sent == [
        ("EiRegisterParty", "QueryRegistration"), ("EiRegisterParty", "CreatePartyRegistration"),
        ("OadrPoll", "Poll"), ("EiEvent", "CreatedEvent"),
        ("OadrPoll", "Poll"), ("EiReport", "RegisteredReport"),
        ("OadrPoll", "Poll"), ("EiEvent", "CreatedEvent"),
        ("OadrPoll", "Poll"),  # the empty answer: now the VEN would wait its 60 s
    ]
    answer = vtn.received[7][1]
    assert isinstance(answer, CreatedEvent)
    assert answer.event_responses[0].modification_number == 1
    assert answer.response.request_id == "dist-2"


async def test_reregistration_and_cancellation_requested_by_the_vtn(
        pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    queue: list[Message] = [
        RequestReregistration(ven_id=VEN_ID),
        CancelPartyRegistration(request_id="bye", registration_id=REGISTRATION_ID, ven_id=VEN_ID),
    ]
    received, ven = await _run_until_cancelled(pki, default_script(queue))
    kinds = [type(message).__name__ for message in received]
    assert kinds == ["QueryRegistration", "CreatePartyRegistration", "Poll", "Response",
                     "QueryRegistration", "CreatePartyRegistration", "Poll",
                     "CanceledPartyRegistration"]
    again = received[5]
    assert isinstance(again, CreatePartyRegistration)
    assert (again.ven_id, again.registration_id) == (VEN_ID, REGISTRATION_ID)
    canceled = received[7]
    assert isinstance(canceled, CanceledPartyRegistration)
    assert canceled.response.code == 200 and canceled.response.request_id == "bye"
    assert ven.registration is None and ven.deregistered
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and "cancelled this VEN's registration" in r.getMessage()] == [
        f"the VTN cancelled this VEN's registration (venID {VEN_ID}); polling ends"]


async def test_a_ven_the_vtn_forgot_registers_again(pki: Pki) -> None:
    """A poll answered 463 (no active registration, as after an admin evict): the loop
    registers afresh, asks for the whole event list, and polls on."""
    polls = 0

    def forgetful(_service: str, message: Message) -> Message | None:
        nonlocal polls
        if not isinstance(message, Poll):
            return None
        polls += 1
        if polls == 1:
            return Response(response=EiResponse(code=463, description="no active registration"))
        return CancelPartyRegistration(request_id="bye", registration_id=REGISTRATION_ID,
                                       ven_id=VEN_ID)

    received, _ = await _run_until_cancelled(pki, default_script(extra=forgetful))
    assert [type(message).__name__ for message in received] == [
        "QueryRegistration", "CreatePartyRegistration", "Poll",
        "QueryRegistration", "CreatePartyRegistration", "RequestEvent", "Poll",
        "CanceledPartyRegistration"]


async def test_the_retry_log_line_names_what_failed(
        pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """A registration answered 503, then a poll answered 502, then the event resync after it
    answered 503: each warning names its step."""
    failures = [CreatePartyRegistration, Poll, RequestEvent]

    def flaky(_service: str, message: Message) -> Message | web.StreamResponse | None:
        if failures and isinstance(message, failures[0]):
            failures.pop(0)
            return web.Response(status=502 if isinstance(message, Poll) else 503)
        if isinstance(message, Poll):
            return CancelPartyRegistration(request_id="bye", registration_id=REGISTRATION_ID,
                                           ven_id=VEN_ID)
        return None

    with caplog.at_level(logging.WARNING, logger="ven.client"):
        await _run_until_cancelled(pki, default_script(extra=flaky))
    steps = [r.getMessage().split(" (")[0] for r in caplog.records
             if r.name == "ven.client" and "; retry " in r.getMessage()]
    assert steps == ["registration failed", "poll failed", "event resync failed"]


async def _run_until_cancelled(pki: Pki, script: Script) -> tuple[list[Message], VenClient]:
    """A VEN run against ``script`` until the VTN cancels its registration; what the VTN
    received, in order, and the (closed) client."""
    async with scripted_vtn(pki.server_context(), script) as vtn, \
            VenClient(VenSettings(ven_name="v", connection=Connection(
                vtn_url=vtn.url, ssl_context=pki.client_context(), poll_interval=60,
                backoff=FAST))) as ven:
        async with asyncio.timeout(10):
            await ven.run()  # returns once the VTN cancelled the registration
    return [message for _, message in vtn.received], ven


async def test_refusals_and_outages_are_told_apart(pki: Pki) -> None:
    def refuse(service: str, message: Message) -> Message | web.StreamResponse | None:
        if isinstance(message, CreatePartyRegistration):
            return Response(response=EiResponse(code=452, description="unknown VEN"))
        if isinstance(message, Poll):
            return web.Response(status=503)
        if isinstance(message, CreateOpt):
            return web.Response(body=b"<not-xml", content_type="application/xml")
        return None

    async with scripted_vtn(pki.server_context(), default_script(extra=refuse)) as vtn, \
            VenClient(VenSettings(ven_name="v", connection=Connection(
                vtn_url=vtn.url, ssl_context=pki.client_context(), backoff=FAST))) as ven:
        with pytest.raises(VtnRefused) as refused:
            await ven.register()
        assert refused.value.code == 452
        registered(ven)
        with pytest.raises(VtnUnavailable, match="503"):
            await ven.poll_once()
        with pytest.raises(InvalidData):
            await ven.create_opt(opt_type=OptType.OPT_OUT, opt_reason=OptReason.MUST_RUN)

    async with VenClient(VenSettings(ven_name="v", connection=Connection(
            vtn_url=f"https://127.0.0.1:{free_port()}", ssl_context=pki.client_context()))
            ) as nobody:
        with pytest.raises(VtnUnavailable):
            await nobody.register()


async def test_untrusted_vtn_certificate_is_a_transport_failure(pki: Pki) -> None:
    untrusted = pki.server_context(vtn=pki.untrusted_vtn)
    async with scripted_vtn(untrusted, default_script()) as vtn, \
            VenClient(VenSettings(ven_name="v", connection=Connection(
                vtn_url=vtn.url, ssl_context=pki.client_context()))) as ven:
        with pytest.raises(VtnUnavailable, match=r"[Cc]ertificate"):
            await ven.register()
    assert vtn.received == []


async def test_poll_loop_backs_off_through_an_outage(pki: Pki) -> None:
    """Tried: three polls answered 502, then one with an event, then one 502, then an empty one.

    The back-off waits are recorded instead of slept (``retry_sleep``), so nothing here depends
    on how fast the machine is; the exchange the test waits for is the last one the loop makes
    (after an empty answer it waits its 60 s interval), so every count below is final by then.
    """
    answers: list[Message | web.StreamResponse] = [
        *(web.Response(status=502) for _ in range(3)),
        distribute(event("e1", 0)),  # a payload: the loop polls again at once, no interval
        web.Response(status=502),
    ]
    recovered = asyncio.Event()
    draws: list[float] = []
    waits: list[float] = []

    def flaky(service: str, message: Message) -> Message | web.StreamResponse | None:
        if not isinstance(message, Poll):
            return None
        if answers:
            return answers.pop(0)
        recovered.set()
        return ok()

    def draw() -> float:
        draws.append(0.5)
        return 0.5

    async def recorded(seconds: float) -> None:
        waits.append(seconds)

    errors: list[VenError] = []
    backoff = Backoff(base=0.001, cap=0.01, random=draw)
    async with scripted_vtn(pki.server_context(), default_script(extra=flaky)) as vtn, \
            VenClient(VenSettings(
                ven_name="v",
                connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context(),
                                      poll_interval=60, backoff=backoff),
                hooks=Hooks(on_error=errors.append, on_event=lambda e: OptType.OPT_IN),
                time=TimeSource(retry_sleep=recorded))) as ven:
        ven.start_polling()
        async with asyncio.timeout(10):
            await recovered.wait()
    outage = 3
    assert len(errors) == outage + 1 and all(isinstance(e, VtnUnavailable) for e in errors)
    assert len(draws) == outage + 1  # one jittered delay per failure
    # growing by the factor (jitter draw 0.5 takes a quarter off), reset after the success
    assert waits == pytest.approx([0.00075, 0.0015, 0.003, 0.00075])
    kinds = [type(message).__name__ for _, message in vtn.received]
    assert kinds == [
        "QueryRegistration", "CreatePartyRegistration",
        # per failed poll, an oadrRequestEvent resync before the retry
        "Poll", "RequestEvent", "Poll", "RequestEvent", "Poll", "RequestEvent",
        "Poll", "CreatedEvent",
        "Poll", "RequestEvent",
        "Poll",  # the empty answer: now the VEN waits its 60 s
    ]


async def test_opt_schedule_created_and_cancelled(pki: Pki) -> None:
    def opts(service: str, message: Message) -> Message | None:
        if isinstance(message, CreateOpt):
            return CreatedOpt(response=EiResponse(request_id=message.request_id),
                              opt_id=message.opt_id)
        if isinstance(message, CancelOpt):
            return CanceledOpt(response=EiResponse(request_id=message.request_id),
                               opt_id=message.opt_id)
        return None

    async with scripted_vtn(pki.server_context(), default_script(extra=opts)) as vtn, \
            VenClient(VenSettings(
                ven_name="v",
                connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context()),
                time=TimeSource(clock=lambda: T0))) as ven:
        await ven.register()
        created = await ven.create_opt(
            opt_type=OptType.OPT_OUT, opt_reason=OptReason("x-crowdBalancing"), opt_id="opt-007",
            vavailability=(Availability(dtstart=T0, duration=timedelta(hours=2)),),
        )
        canceled = await ven.cancel_opt(created.opt_id)
    assert created.opt_id == "opt-007" and canceled.opt_id == "opt-007"
    sent = vtn.received[2][1]
    assert isinstance(sent, CreateOpt)
    assert (sent.ven_id, sent.opt_type, sent.created_date_time) == (VEN_ID, OptType.OPT_OUT, T0)
    assert sent.vavailability == (Availability(dtstart=T0, duration=timedelta(hours=2)),)
    assert [s for s, _ in vtn.received[2:]] == ["EiOpt", "EiOpt"]


async def test_vtn_offered_reports_are_acknowledged(pki: Pki) -> None:
    async with VenClient(VenSettings(ven_name="v", connection=Connection(
            vtn_url="https://127.0.0.1:9", ssl_context=None))) as ven:
        registered(ven)
        outcome = await ven.receive(RegisterReport(request_id="offer-1", ven_id=VEN_ID))
    assert isinstance(outcome.reply, RegisteredReport)
    assert outcome.reply.response.request_id == "offer-1"
    assert outcome.service == "EiReport"


async def test_work_spawned_just_before_close_is_closed_not_left_unawaited():
    """A push's "after the reply" step spawned as the client closes: the task is cancelled
    before its first step, and the coroutine is closed with it (no 'never awaited')."""
    ran: list[str] = []

    async def after() -> None:
        ran.append("after")

    work = after()
    async with VenClient(VenSettings(ven_name="v", connection=Connection(
            vtn_url="https://127.0.0.1:9", ssl_context=None))) as ven:
        ven.spawn(work)
    assert ran == []
    assert work.cr_frame is None  # closed: Python would warn of one never awaited
