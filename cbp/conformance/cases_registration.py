"""N1 cases: EiRegisterParty, the harness playing the VEN (profile 8.1).

Cases that end the registration register again before they return, so later cases start from a
registered VEN.
"""

from __future__ import annotations

from typing import Final

from schemas import (
    CanceledPartyRegistration,
    CancelPartyRegistration,
    CreatedPartyRegistration,
    CreatePartyRegistration,
    EiResponse,
    Message,
    Poll,
    ProfileName,
    QueryRegistration,
    RequestEvent,
    RequestReregistration,
    Response,
    TransportName,
    new_id,
)
from schemas.xmpp import FEATURE, SERVICES_NODE, XMPP_SERVICES, service_node

from ._checks import ok, refused, require
from ._model import Case
from .operators import StepKind
from .session import HarnessVen

__all__ = ["REGISTRATION_CASES"]

_SECTION: Final = "OpenADR 2.0b profile 8.1 (EiRegisterParty)"


async def _query(ven: HarnessVen) -> str:
    reply = ok(await ven.send("EiRegisterParty", QueryRegistration(request_id=new_id())),
               CreatedPartyRegistration)
    offered = {(p.profile_name, t) for p in reply.profiles for t in p.transports}
    transport = ven.settings.transport
    require((ProfileName.OADR_20B, transport) in offered,
            f"2.0b over {transport} is not among the offered profiles {sorted(offered)}")
    said = f"vtnID {reply.vtn_id!r} offers 2.0b over {transport}"
    return f"{said}; {await _discovered(ven)}" if transport is TransportName.XMPP else said


async def _discovered(ven: HarnessVen) -> str:
    """Profile 9.3.2 (XEP-0030): the VTN announces the OpenADR feature, and under the services
    node an item for each service it serves over XMPP."""
    features, items = await ven.discover()
    require(FEATURE in features, f"disco#info lacks the feature {FEATURE}")
    missing = sorted({service_node(s) for s in XMPP_SERVICES} - {node for _jid, node in items})
    require(not missing, f"disco#items under {SERVICES_NODE} lacks {', '.join(missing)}")
    return f"service discovery announces {FEATURE} and {len(items)} service items"


async def _create(ven: HarnessVen) -> str:
    created = await ven.register()
    require(created.ven_id, "oadrCreatedPartyRegistration gave no venID")
    require(ven.settings.push or created.requested_oadr_poll_freq is not None,
            "no oadrRequestedOadrPollFreq for a pull VEN")
    await ven.settle()
    return (f"registrationID {created.registration_id!r}, venID {created.ven_id!r}, "
            f"pollFreq {created.requested_oadr_poll_freq}")


async def _reregister(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    before = ven.ven_id
    created = await ven.register(registration_id=ven.registration_id)
    require(created.ven_id == before, f"venID changed from {before!r} to {created.ven_id!r}")
    await ven.settle()
    return f"re-registered as {created.ven_id!r} with registrationID {created.registration_id!r}"


async def _ven_cancels(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    registration_id = ven.registration_id or ""
    reply = ok(await ven.send("EiRegisterParty", CancelPartyRegistration(
        request_id=new_id(), registration_id=registration_id, ven_id=ven.ven_id)),
        CanceledPartyRegistration)
    require(reply.registration_id in (None, registration_id),
            f"the cancel names registrationID {reply.registration_id!r}, not {registration_id!r}")
    ven.ended_registration()
    service, request = _registered_only(ven)
    after = refused(await ven.post(service, ven.codec.encode(request), request))
    await ven.ensure_registered()
    return f"cancelled; {service} afterwards was refused ({after}); registered again"


def _registered_only(ven: HarnessVen) -> tuple[str, Message]:
    """A request only a registered VEN may make: oadrPoll, or oadrRequestEvent over XMPP
    (which has no polling, so a VTN refuses a poll there whoever sends it)."""
    if ven.settings.transport is TransportName.XMPP:
        return "EiEvent", RequestEvent(request_id=new_id(), ven_id=ven.ven_id)
    return "OadrPoll", Poll(ven_id=ven.ven_id)


async def _vtn_cancels(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    await ven.operate(StepKind.CANCEL_REGISTRATION)
    cancel = await ven.wait_for(CancelPartyRegistration, "oadrCancelPartyRegistration")
    require(cancel.registration_id == ven.registration_id,
            f"the cancel names registrationID {cancel.registration_id!r}, "
            f"not {ven.registration_id!r}")
    ok(await ven.send("EiRegisterParty", CanceledPartyRegistration(
        response=EiResponse(request_id=cancel.request_id),
        registration_id=cancel.registration_id, ven_id=ven.ven_id)), Response)
    ven.ended_registration()
    await ven.ensure_registered()
    return "the VTN's cancel arrived by poll and its acknowledgement was accepted"


async def _reregistration_requested(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    await ven.operate(StepKind.REQUEST_REREGISTRATION)
    await ven.wait_for(RequestReregistration, "oadrRequestReregistration")
    ok(await ven.send("EiRegisterParty", Response(response=EiResponse(), ven_id=ven.ven_id)),
       Response)
    created = await ven.register(registration_id=ven.registration_id)
    await ven.settle()
    return f"asked by poll to re-register; did so as {created.ven_id!r}"


async def _empty_poll(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    ok(await ven.poll(), Response)
    return "nothing queued: oadrResponse 200"


async def _unknown_registration(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    message = CreatePartyRegistration(
        request_id=new_id(), registration_id=f"cf-unknown-{new_id()}", ven_id=ven.ven_id,
        ven_name=ven.settings.ven_name, http_pull_model=True)
    how = refused(await ven.post("EiRegisterParty", ven.codec.encode(message), message),
                  codes=frozenset({452}))
    return f"refused: {how}"


#: the cases that do not apply to a push VEN (it has no reason to poll)
PUSH_EXCLUDED: Final = frozenset({_empty_poll})

REGISTRATION_CASES: Final = (
    Case(case_id="N1_0010_TH_VEN", purpose="query registration: the VTN says what it supports",
         requirement=f"{_SECTION}: oadrQueryRegistration is answered with "
         "oadrCreatedPartyRegistration listing its profiles and transports; over XMPP the VTN "
         "also announces the OpenADR feature and its services by service discovery (profile "
         "9.3.2, XEP-0030)",
         messages=("> oadrQueryRegistration", "< oadrCreatedPartyRegistration",
                   "(XMPP) > disco#info, disco#items", "< its feature and service items"),
         run=_query),
    Case(case_id="N1_0020_TH_VEN", purpose="register a VEN (pull, or push with its address)",
         requirement=f"{_SECTION}: a registration is answered 200 with registrationID, venID "
         "and, for a pull VEN, oadrRequestedOadrPollFreq",
         messages=("> oadrCreatePartyRegistration", "< oadrCreatedPartyRegistration"),
         run=_create),
    Case(case_id="N1_0030_TH_VEN", purpose="re-register with the registrationID",
         requirement=f"{_SECTION}: a registered VEN may register again naming its "
         "registrationID; its venID stays", messages=(
             "> oadrCreatePartyRegistration (registrationID)", "< oadrCreatedPartyRegistration"),
         run=_reregister),
    Case(case_id="N1_0040_TH_VEN", purpose="the VEN cancels its registration",
         requirement=f"{_SECTION}: oadrCancelPartyRegistration is answered 200; the "
         "registration is over (Conformance Rule 21: later requests are refused)",
         messages=("> oadrCancelPartyRegistration", "< oadrCanceledPartyRegistration",
                   "> oadrPoll (oadrRequestEvent over XMPP)", "< error"), run=_ven_cancels),
    Case(case_id="N1_0050_TH_VEN", purpose="the VTN cancels the registration (operator)",
         requirement=f"{_SECTION}: a VTN-initiated cancel reaches a pull VEN by poll and its "
         "oadrCanceledPartyRegistration is accepted",
         messages=("operator: cancel registration", "> oadrPoll",
                   "< oadrCancelPartyRegistration", "> oadrCanceledPartyRegistration",
                   "< oadrResponse"), run=_vtn_cancels),
    Case(case_id="N1_0060_TH_VEN", purpose="the VTN requests re-registration (operator)",
         requirement=f"{_SECTION}: oadrRequestReregistration reaches a pull VEN by poll; the "
         "VEN acknowledges and registers again",
         messages=("operator: request reregistration", "> oadrPoll",
                   "< oadrRequestReregistration", "> oadrResponse", "< oadrResponse",
                   "> oadrCreatePartyRegistration", "< oadrCreatedPartyRegistration"),
         run=_reregistration_requested),
    Case(case_id="N1_0070_TH_VEN", purpose="a poll with nothing queued",
         requirement="OpenADR 2.0b profile 8.6 (OadrPoll): nothing queued is oadrResponse 200",
         messages=("> oadrPoll", "< oadrResponse"), run=_empty_poll),
    Case(case_id="N1_0080_TH_VEN", purpose="a registrationID the VTN never issued is refused",
         requirement=f"{_SECTION} and error codes (profile 7): an unknown registrationID is "
         "452 (invalid ID)", messages=("> oadrCreatePartyRegistration (unknown registrationID)",
                                       "< error 452"), run=_unknown_registration),
)
