"""Signature cases (``--signed``): XML signatures and ReplayProtect (OpenADR 2.0b profile 10).

In signed mode the harness VEN signs every payload it sends (enveloped ds:Signature with
dsp:ReplayProtect: a fresh nonce and the current time) with its own certificate, and checks the
VTN's signed replies against ``--ca``. These cases then check what a VTN that requires signatures
must do: take a signed payload and sign its answer, and refuse a tampered, a replayed and an
unsigned one.
"""

from __future__ import annotations

from typing import Final

from schemas import (
    Codec,
    DistributeEvent,
    RequestEvent,
    new_id,
)

from ._checks import expect, refused, require
from ._model import Case
from .session import HarnessVen

__all__ = ["SIGNATURES", "SIGNATURE_CASES"]

#: the requirement both sides' signature cases check
SIGNATURES: Final = "OpenADR 2.0b profile 10 (security: XML signatures, ReplayProtect)"


def _request(ven: HarnessVen) -> tuple[RequestEvent, bytes]:
    message = RequestEvent(request_id=new_id(), ven_id=ven.ven_id)
    return message, ven.codec.encode(message)


async def _signed_both_ways(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    message, body = _request(ven)
    exchange = await ven.post("EiEvent", body, message)
    if exchange.received is None:
        return refused(exchange)  # raises: a refusal of a well-signed payload is a failure
    expect(exchange.received, DistributeEvent)
    problem = ven.unverified_reply(exchange.reply)
    require(problem is None, f"the VTN's reply fails: {problem}")
    return "signed oadrRequestEvent accepted; the VTN's signed reply verifies"


async def _tampered(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    message, body = _request(ven)
    tampered = body.replace(message.request_id.encode(), new_id().encode())
    require(tampered != body, "could not tamper with the signed payload (harness bug)")
    return f"refused: {refused(await ven.post('EiEvent', tampered, None))}"


async def _replayed(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    message, body = _request(ven)
    first = await ven.post("EiEvent", body, message)
    require(first.received is not None and isinstance(first.received, DistributeEvent),
            f"the first copy was not answered with oadrDistributeEvent: {first.error or ''}"
            f"{first.received_name}")
    return f"the second copy was refused: {refused(await ven.post('EiEvent', body, message))}"


async def _unsigned(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    message = RequestEvent(request_id=new_id(), ven_id=ven.ven_id)
    return f"refused: {refused(await ven.post('EiEvent', Codec().encode(message), message))}"


SIGNATURE_CASES: Final = (
    Case(case_id="G1_4030_TH_VEN",
         purpose="a signed payload is accepted and the VTN's reply is signed and verifies",
         requirement=f"{SIGNATURES}: a VTN using signatures signs what it sends",
         messages=("> oadrRequestEvent (signed)", "< oadrDistributeEvent (signed)"),
         run=_signed_both_ways),
    Case(case_id="G1_4031_TH_VEN", purpose="a payload changed after signing is refused",
         requirement=f"{SIGNATURES}: the digest covers the payload",
         messages=("> oadrRequestEvent (tampered)", "< refusal"), run=_tampered),
    Case(case_id="G1_4032_TH_VEN", purpose="a signed payload sent twice is refused the second time",
         requirement=f"{SIGNATURES}: ReplayProtect nonces are used once",
         messages=("> oadrRequestEvent (signed)", "< oadrDistributeEvent",
                   "> the same bytes", "< refusal"), run=_replayed),
    Case(case_id="G1_4033_TH_VEN",
         purpose="an unsigned payload is refused by a VTN that requires signatures",
         requirement=f"{SIGNATURES}: a VTN requiring signatures refuses unsigned payloads",
         messages=("> oadrRequestEvent (unsigned)", "< refusal"), run=_unsigned),
)
