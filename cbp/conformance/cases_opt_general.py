"""P1 cases (EiOpt, profile 8.4) and G1 cases (general: identity, bad input, TLS).

The G1 cases send what a VTN must refuse: another VEN's venID, a payload the endpoint does not
serve, a document that is no 2.0b payload, a schema-invalid payload, and a request over TLS
without a client certificate (over XMPP: a session without one). A refusal is an OpenADR error
code, an HTTP 4xx or an XMPP error; a success, an HTTP 5xx or silence fails.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from schemas import (
    Availability,
    CanceledOpt,
    CancelOpt,
    CreatedOpt,
    CreateOpt,
    OptReason,
    OptType,
    Poll,
    QualifiedEventId,
    RequestEvent,
    Target,
    new_id,
)

from ._checks import ok, refused, require
from ._model import MARKET_CONTEXT, Case, CaseFailed
from .cases_events import event_params, received_event
from .operators import StepKind
from .session import HarnessVen

__all__ = ["GENERAL_CASES", "OPT_CASES"]

_OPT: Final = "OpenADR 2.0b profile 8.4 (EiOpt)"
_XML: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _schedule(ven: HarnessVen, **fields: Any) -> CreateOpt:
    now = ven.clock().replace(microsecond=0)
    values: dict[str, Any] = {
        "opt_id": f"cf-opt-{new_id()}", "opt_type": OptType.OPT_OUT,
        "opt_reason": OptReason.X_SCHEDULE, "market_context": MARKET_CONTEXT,
        "ven_id": ven.ven_id, "created_date_time": now, "request_id": new_id(),
        "vavailability": (Availability(dtstart=now + timedelta(days=1),
                                       duration=timedelta(hours=2)),),
        "target": Target(ven_ids=(ven.ven_id,)),
    }
    return CreateOpt(**(values | fields))


async def _created_opt(ven: HarnessVen, opt: CreateOpt) -> CreatedOpt:
    reply = ok(await ven.send("EiOpt", opt), CreatedOpt)
    require(reply.opt_id == opt.opt_id, f"optID {reply.opt_id!r}, not {opt.opt_id!r}")
    return reply


async def _availability(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    opt = _schedule(ven)
    await _created_opt(ven, opt)
    return f"availability schedule {opt.opt_id!r} acknowledged"


async def _cancel_opt(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    opt = _schedule(ven)
    await _created_opt(ven, opt)
    reply = ok(await ven.send("EiOpt", CancelOpt(request_id=new_id(), opt_id=opt.opt_id,
                                                 ven_id=ven.ven_id)), CanceledOpt)
    require(reply.opt_id in (None, opt.opt_id), f"optID {reply.opt_id!r}, not {opt.opt_id!r}")
    return f"schedule {opt.opt_id!r} created and cancelled"


async def _event_opt(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    params = event_params(ven, (3.0,))
    await ven.operate(StepKind.CREATE_EVENT, **params)
    distribution, event = await received_event(ven, params)
    await ven.acknowledge(distribution, OptType.OPT_IN)
    opt = _schedule(ven, opt_reason=OptReason.NOT_PARTICIPATING, vavailability=None,
                    qualified_event_id=QualifiedEventId(
                        event_id=event.event_id, modification_number=event.modification_number))
    await _created_opt(ven, opt)
    return f"optOut of event {event.event_id!r} by oadrCreateOpt acknowledged"


async def _unknown_event_opt(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    opt = _schedule(ven, vavailability=None, qualified_event_id=QualifiedEventId(
        event_id=f"cf-unknown-{new_id()}", modification_number=0))
    return f"refused: {refused(await ven.post('EiOpt', ven.codec.encode(opt), opt))}"


async def _wrong_ven(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    message = RequestEvent(request_id=new_id(), ven_id=f"cf-not-{ven.ven_id}")
    how = refused(await ven.post("EiEvent", ven.codec.encode(message), message),
                  codes=frozenset({452, 463}))
    return f"refused: {how}"


async def _unknown_payload(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    poll = Poll(ven_id=ven.ven_id)
    misplaced = refused(await ven.post("EiOpt", ven.codec.encode(poll), poll))
    stranger = refused(await ven.post(
        "EiEvent", _XML + b'<conformance xmlns="urn:example:not-openadr">hello</conformance>',
        None))
    return f"oadrPoll on EiOpt: {misplaced}; a foreign document: {stranger}"


async def _schema_invalid(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    body = ven.codec.encode(Poll(ven_id=ven.ven_id))
    broken = body.replace(b"<ei:venID>", b"<ei:venIdentifier>").replace(
        b"</ei:venID>", b"</ei:venIdentifier>")
    if broken == body:
        raise CaseFailed("could not build the schema-invalid poll (harness bug)")
    return f"refused: {refused(await ven.post('OadrPoll', broken, None))}"


async def _no_client_certificate(ven: HarnessVen) -> str:
    poll = Poll(ven_id=ven.memory.ven_id or "cf-anonymous")
    exchange = await ven.post_anonymously("OadrPoll", ven.codec.encode(poll), poll)
    if exchange.status is None and exchange.refusal is None:
        return f"the connection was refused ({exchange.error})"
    return f"refused: {refused(exchange)}"


OPT_CASES: Final = (
    Case(case_id="P1_2010_TH_VEN", purpose="an availability schedule (oadrCreateOpt)",
         requirement=f"{_OPT}: oadrCreateOpt with a vavailability schedule is answered "
         "oadrCreatedOpt 200 naming its optID",
         messages=("> oadrCreateOpt", "< oadrCreatedOpt"), run=_availability),
    Case(case_id="P1_2020_TH_VEN", purpose="withdraw a schedule (oadrCancelOpt)",
         requirement=f"{_OPT}: oadrCancelOpt of a known optID is answered oadrCanceledOpt 200",
         messages=("> oadrCreateOpt", "< oadrCreatedOpt", "> oadrCancelOpt",
                   "< oadrCanceledOpt"), run=_cancel_opt),
    Case(case_id="P1_2030_TH_VEN", purpose="opt out of one event by oadrCreateOpt",
         requirement=f"{_OPT}: oadrCreateOpt with a qualifiedEventID is answered 200",
         messages=("operator: create event", "> oadrPoll", "< oadrDistributeEvent",
                   "> oadrCreateOpt", "< oadrCreatedOpt"), run=_event_opt),
    Case(case_id="P1_2040_TH_VEN", purpose="an opt for an unknown event is refused",
         requirement=f"{_OPT} and Conformance Rule 21: an unexpected eventID is an error",
         messages=("> oadrCreateOpt (unknown eventID)", "< error"), run=_unknown_event_opt),
)

GENERAL_CASES: Final = (
    Case(case_id="G1_4010_TH_VEN", purpose="another VEN's venID is refused",
         requirement="Conformance Rule 21 and error codes (profile 7): a venID that is not "
         "the sender's is 452 (invalid ID) or 463 (not registered)",
         messages=("> oadrRequestEvent (foreign venID)", "< error 452/463"), run=_wrong_ven),
    Case(case_id="G1_4011_TH_VEN", purpose="unknown payloads are refused with an error code",
         requirement="profile 7 (error codes) and the Simple HTTP transport: a payload the "
         "endpoint does not serve, or no 2.0b payload at all, is refused, never accepted nor a "
         "server error",
         messages=("> oadrPoll on EiOpt", "< error", "> foreign XML", "< error"),
         run=_unknown_payload),
    Case(case_id="G1_4015_TH_VEN", purpose="a schema-invalid payload is refused",
         requirement="profile 7 (error codes) and the 2.0b schema: a payload that fails "
         "oadr_20b.xsd is answered with an error code", messages=(
             "> oadrPoll without venID", "< error"), run=_schema_invalid),
    Case(case_id="G1_4020_TH_VEN", purpose="TLS without a client certificate is refused",
         requirement="the profile's security section: every connection is mutually "
         "authenticated TLS (over XMPP: the session is SASL EXTERNAL on the certificate, 9.3.5)",
         messages=("> oadrPoll over TLS without client certificate", "< refused"),
         run=_no_client_certificate),
)
