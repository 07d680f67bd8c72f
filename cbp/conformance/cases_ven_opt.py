"""P1 cases of ``crowdflex conformance ven`` (EiOpt, OpenADR 2.0b profile 8.4): the VEN's opts.

A VEN opts on its own initiative, so each case has the VEN's operator (an
:class:`~cbp.conformance.Operator`) make it send exactly the opt the case describes: an opt-out
schedule, an opt-in schedule of two intervals, the cancellation of the first schedule, an opt out
of one event the harness distributed, and an opt out of an event the VTN never sent, which the
harness VTN answers with oadrCreatedOpt 452. Each case then checks the payload the VEN sent: its
optType, optReason, marketContext, target and schedule or event as asked, a fresh optID and a
fresh requestID. The last case checks the VEN takes the refusal in its stride: it stays registered
and answers the next event. They run after the report cases, against the same VEN; with
``--push`` and over XMPP under the push numbers (P0_70xx).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final

from schemas import (
    Availability,
    CancelOpt,
    CreatedOpt,
    CreateOpt,
    CreatePartyRegistration,
    OptReason,
    OptType,
    ResponseRequired,
    new_id,
)

from ._checks import require
from ._model import MARKET_CONTEXT, Case, CaseFailed
from .cases_ven import answered, new_event
from .harness_vtn import HarnessVtn
from .operators import StepKind

__all__ = ["VEN_OPT_CASES"]

_OPT: Final = "OpenADR 2.0b profile 8.4 (EiOpt)"
#: the messages of an opt the VEN's operator has it send
_CREATES: Final = ("operator: create opt", "< oadrCreateOpt", "> oadrCreatedOpt")


def _sent_before(vtn: HarnessVtn, mark: int) -> list[CreateOpt | CancelOpt]:
    return [m for m in vtn.heard_since(0)[:mark] if isinstance(m, CreateOpt | CancelOpt)]


def _fresh(vtn: HarnessVtn, message: CreateOpt | CancelOpt, mark: int) -> None:
    """``message``'s requestID (and a new opt's optID) is not one an earlier opt payload used."""
    earlier = _sent_before(vtn, mark)
    require(message.request_id, "its requestID is empty")
    require(message.request_id not in {m.request_id for m in earlier},
            f"it reuses requestID {message.request_id!r} of an earlier opt payload")
    if isinstance(message, CreateOpt):
        require(message.opt_id, "its optID is empty")
        require(message.opt_id not in {m.opt_id for m in earlier if isinstance(m, CreateOpt)},
                f"it reuses optID {message.opt_id!r} of an earlier oadrCreateOpt")


async def _opt_sent(vtn: HarnessVtn, opt_type: OptType, opt_reason: OptReason,
                    **what: object) -> CreateOpt:
    """Have the VEN send an opt of ``opt_type`` for ``opt_reason`` with ``what`` (a schedule or
    an event); the oadrCreateOpt it sent, checked against what it was asked."""
    ven_id = vtn.registered_ven()
    mark = vtn.mark()
    await vtn.operate(StepKind.CREATE_OPT, opt_type=opt_type.value,
                      opt_reason=opt_reason.value, market_context=MARKET_CONTEXT,
                      targets={"ven_ids": [ven_id]}, **what)
    opt = await vtn.wait_for(CreateOpt, "oadrCreateOpt", after=mark)
    require(opt.opt_type is opt_type, f"its optType is {opt.opt_type.value}, not "
            f"{opt_type.value}")
    require(opt.opt_reason == opt_reason, f"its optReason is {opt.opt_reason.value}, not "
            f"{opt_reason.value}")
    require(opt.market_context == MARKET_CONTEXT,
            f"its marketContext is {opt.market_context!r}, not {MARKET_CONTEXT!r}")
    require(ven_id in opt.target.ven_ids,
            f"its eiTarget names venIDs {list(opt.target.ven_ids)}, not {ven_id!r}")
    _fresh(vtn, opt, mark)
    return opt


def _schedule(vtn: HarnessVtn, *windows: tuple[timedelta, timedelta]) -> tuple[Availability, ...]:
    """Availability components starting at ``now + offset`` for ``duration``, per window."""
    now = vtn.clock().replace(microsecond=0)
    return tuple(Availability(dtstart=now + offset, duration=duration)
                 for offset, duration in windows)


def _as_params(schedule: Sequence[Availability]) -> list[dict[str, object]]:
    return [{"start": a.dtstart.isoformat(), "duration_s": int(a.duration.total_seconds())}
            for a in schedule]


async def _schedule_sent(vtn: HarnessVtn, opt_type: OptType,
                         schedule: tuple[Availability, ...]) -> str:
    opt = await _opt_sent(vtn, opt_type, OptReason.X_SCHEDULE, availability=_as_params(schedule))
    if opt.vavailability is None:
        raise CaseFailed("it carries no vavailability")
    require(sorted(opt.vavailability, key=lambda a: a.dtstart) == list(schedule),
            f"its vavailability {_as_params(opt.vavailability)} is not the "
            f"{_as_params(schedule)} asked for")
    require(opt.qualified_event_id is None, "a schedule names an event (qualifiedEventID)")
    return (f"{opt_type.value} schedule {opt.opt_id!r} of {len(schedule)} interval(s), "
            "acknowledged")


async def _opts_out_by_schedule(vtn: HarnessVtn) -> str:
    return await _schedule_sent(vtn, OptType.OPT_OUT,
                                _schedule(vtn, (timedelta(days=1), timedelta(hours=2))))


async def _opts_in_by_schedule(vtn: HarnessVtn) -> str:
    return await _schedule_sent(vtn, OptType.OPT_IN, _schedule(
        vtn, (timedelta(days=2), timedelta(hours=1)),
        (timedelta(days=2, hours=4), timedelta(hours=2))))


async def _cancels_schedule(vtn: HarnessVtn) -> str:
    schedules = [m for m in vtn.heard_since(0) if isinstance(m, CreateOpt)
                 and m.vavailability and m.opt_id in vtn.said.opt_ids]
    if not schedules:
        raise CaseFailed("no opt schedule was acknowledged to cancel (P1_2010 did not pass)")
    opt_id = schedules[0].opt_id
    mark = vtn.mark()
    await vtn.operate(StepKind.CANCEL_OPT, opt_id=opt_id)
    cancel = await vtn.wait_for(CancelOpt, f"oadrCancelOpt for optID {opt_id!r}",
                                lambda m: m.opt_id == opt_id, after=mark)
    _fresh(vtn, cancel, mark)
    return f"schedule {opt_id!r} cancelled"


async def _event_opt_sent(vtn: HarnessVtn, event_id: str, modification_number: int
                          ) -> CreateOpt:
    opt = await _opt_sent(vtn, OptType.OPT_OUT, OptReason.NOT_PARTICIPATING, event_id=event_id,
                          modification_number=modification_number)
    named = opt.qualified_event_id
    if named is None:
        raise CaseFailed("it names no event (qualifiedEventID)")
    require((named.event_id, named.modification_number) == (event_id, modification_number),
            f"it names event {named.event_id!r} modification {named.modification_number}, not "
            f"{event_id!r} modification {modification_number}")
    return opt


async def _opts_out_of_event(vtn: HarnessVtn) -> str:
    event = new_event(vtn, ResponseRequired.ALWAYS)
    await answered(vtn, event)
    opt = await _event_opt_sent(vtn, event.event_id, event.modification_number)
    return f"optOut of event {event.event_id!r} by oadrCreateOpt {opt.opt_id!r}, acknowledged"


async def _takes_a_refusal(vtn: HarnessVtn) -> str:
    mark = vtn.mark()
    opt = await _event_opt_sent(vtn, f"cf-unknown-{new_id()}", 0)
    answer = next((e.received for e in vtn.exchanges if e.sent is opt), None)
    if not isinstance(answer, CreatedOpt) or answer.response.ok:
        raise CaseFailed("the harness did not refuse the opt (harness bug)")
    event = new_event(vtn, ResponseRequired.ALWAYS)
    await answered(vtn, event)
    require(not any(isinstance(m, CreatePartyRegistration) for m in vtn.heard_since(mark)),
            "it registered again after the refusal")
    return (f"refused with {answer.response.code}; it stayed registered and answered event "
            f"{event.event_id!r}")


VEN_OPT_CASES: Final[tuple[Case[HarnessVtn], ...]] = (
    Case(case_id="P1_2010_TH_VTN",
         purpose="asked to, the VEN sends an optOut schedule (oadrCreateOpt with vavailability)",
         requirement=f"{_OPT}: a temporary unavailability is an oadrCreateOpt optOut with its "
         "intervals, marketContext, target and reason",
         messages=_CREATES, run=_opts_out_by_schedule),
    Case(case_id="P1_2020_TH_VTN",
         purpose="asked to, the VEN sends an optIn schedule of two intervals",
         requirement=f"{_OPT}: an availability schedule is an oadrCreateOpt optIn with every "
         "interval, under a new optID",
         messages=_CREATES, run=_opts_in_by_schedule),
    Case(case_id="P1_2030_TH_VTN",
         purpose="asked to, the VEN cancels its first schedule (oadrCancelOpt with its optID)",
         requirement=f"{_OPT}: oadrCancelOpt names the optID of the schedule it withdraws",
         messages=("operator: cancel opt", "< oadrCancelOpt", "> oadrCanceledOpt"),
         run=_cancels_schedule),
    Case(case_id="P1_2040_TH_VTN",
         purpose="asked to, the VEN opts out of an event it was sent (qualifiedEventID)",
         requirement=f"{_OPT}: an opt for one event names its eventID and modificationNumber",
         messages=("> oadrDistributeEvent", "< oadrCreatedEvent", *_CREATES),
         run=_opts_out_of_event),
    Case(case_id="P1_2050_TH_VTN",
         purpose="an opt the VTN refuses (452) leaves the VEN registered and answering events",
         requirement=f"{_OPT} and profile 7 (error codes): an error answer ends that exchange, "
         "not the VEN's registration",
         messages=("operator: create opt (unknown event)", "< oadrCreateOpt",
                   "> oadrCreatedOpt 452", "> oadrDistributeEvent", "< oadrCreatedEvent"),
         run=_takes_a_refusal),
)
