"""Signature cases of ``crowdflex conformance ven --signed`` (OpenADR 2.0b profile 10).

In a signed run the harness VTN signs every payload it sends (enveloped ds:Signature with
dsp:ReplayProtect) with its own certificate, which the VEN under test must trust, and refuses
every request that is not signed by a certificate chaining to ``ca`` (passive rule VR07). These
cases then check the VEN's side: a signed event is taken and answered signed; an event whose
payload was changed after signing, or which comes unsigned, is not acted on (no oadrCreatedEvent;
a push VEN answers it with an OpenADR error code). They run after the other cases, against the
same VEN; with ``--push`` under the push numbers (G0_90xx).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final

from schemas import (
    Codec,
    DistributeEvent,
    Poll,
    ResponseRequired,
    SignatureState,
    new_id,
)

from ._checks import refused, require
from ._model import Case, CaseFailed
from .cases_signatures import SIGNATURES
from .cases_ven import answered, answers_to, new_event, response_for
from .harness_vtn import HarnessVtn

__all__ = ["VEN_SIGNATURE_CASES"]

async def _signed_both_ways(vtn: HarnessVtn) -> str:
    event = new_event(vtn, ResponseRequired.ALWAYS)
    mark = vtn.mark()
    response = await answered(vtn, event)
    created = next(m for m in answers_to(vtn, event, after=mark)
                   if response_for(m, event) == response)
    require(created.signature is SignatureState.VERIFIED,
            f"its oadrCreatedEvent is {created.signature.value}, not verified")
    return (f"the signed event {event.event_id!r} got a signed oadrCreatedEvent "
            f"({response.opt_type.value}) that verifies")


async def _push_refused(vtn: HarnessVtn, distribution: DistributeEvent) -> str:
    """How a push VEN answered the push of ``distribution``: it must be a refusal."""
    await vtn.pushed()
    exchange = next((e for e in vtn.exchanges if e.received is distribution), None)
    if exchange is None:
        raise CaseFailed("the push got no HTTP answer from the VEN")
    # for a push the VEN's answer is what it sent: judge it as a reply
    return refused(replace(exchange, received=exchange.sent))


async def _not_acted_on(vtn: HarnessVtn, body: Callable[[DistributeEvent], bytes],
                        what: str) -> str:
    """Deliver an event in a payload ``body`` spoils; the VEN must not answer that event."""
    event = new_event(vtn, ResponseRequired.ALWAYS, live=False)
    distribution = DistributeEvent(request_id=new_id(), vtn_id=vtn.settings.vtn_id,
                                   events=(*vtn.events.values(), event))
    mark = vtn.mark()
    vtn.deliver(distribution, body(distribution))
    if vtn.settings.push:
        outcome = f"refused: {await _push_refused(vtn, distribution)}"
    else:  # the poll it came with, then the next: by then a VEN acting on it has answered
        ven_id = vtn.registered_ven()
        for _ in range(2):
            await vtn.wait_for(Poll, f"oadrPoll after the {what} oadrDistributeEvent",
                               lambda p: p.ven_id == ven_id, after=mark)
        outcome = "dropped"
    require(not answers_to(vtn, event, after=mark),
            f"it acted on the {what} payload: oadrCreatedEvent for {event.event_id!r}")
    return f"the {what} oadrDistributeEvent was {outcome}; no oadrCreatedEvent"


async def _tampered(vtn: HarnessVtn) -> str:
    def tamper(distribution: DistributeEvent) -> bytes:
        signed = vtn.codec.encode(distribution)
        changed = signed.replace(distribution.request_id.encode(), new_id().encode())
        require(changed != signed, "could not tamper with the signed payload (harness bug)")
        return changed

    return await _not_acted_on(vtn, tamper, "tampered")


async def _unsigned(vtn: HarnessVtn) -> str:
    return await _not_acted_on(vtn, Codec(clock=vtn.clock).encode, "unsigned")


VEN_SIGNATURE_CASES: Final[tuple[Case[HarnessVtn], ...]] = (
    Case(case_id="G1_4030_TH_VTN",
         purpose="a signed event is answered with a signed oadrCreatedEvent that verifies",
         requirement=f"{SIGNATURES}: a VEN using signatures verifies and signs",
         messages=("> oadrDistributeEvent (signed)", "< oadrCreatedEvent (signed)"),
         run=_signed_both_ways),
    Case(case_id="G1_4031_TH_VTN",
         purpose="an event payload changed after signing is not acted on",
         requirement=f"{SIGNATURES}: the digest covers the payload",
         messages=("> oadrDistributeEvent (tampered)", "< no oadrCreatedEvent"), run=_tampered),
    Case(case_id="G1_4033_TH_VTN",
         purpose="an unsigned event payload is not acted on by a VEN that requires signatures",
         requirement=f"{SIGNATURES}: a VEN requiring signatures refuses unsigned payloads",
         messages=("> oadrDistributeEvent (unsigned)", "< no oadrCreatedEvent"), run=_unsigned),
)
