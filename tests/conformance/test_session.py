"""The harness VEN's bounds: a VTN that never answers, or never acts, fails the case in time."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from aiohttp import web

from cbp.conformance import (
    CommandOperator,
    ConformanceError,
    HarnessSettings,
    run_cases,
    select,
)
from cbp.conformance._model import MAX_BODY_BYTES
from cbp.conformance.vtn_address import XmppAddress
from schemas import (
    CreatedPartyRegistration,
    CreatePartyRegistration,
    EiResponse,
    Message,
    Poll,
    Profile,
    ProfileName,
    Response,
    TransportName,
)

from ..ven.conftest import SERVICE_PATH, scripted_vtn
from .conftest import endless_xml

PROFILES = (Profile(profile_name=ProfileName.OADR_20B, transports=(TransportName.SIMPLE_HTTP,)),)


def settings(pki, url: str) -> HarnessSettings:
    return HarnessSettings(url=url + SERVICE_PATH, cert=pki.ven.cert, key=pki.ven.key,
                           ca=pki.ca_cert, request_timeout_s=0.5, wait_timeout_s=0.5,
                           poll_interval_s=0.05)


async def test_a_vtn_that_never_answers_fails_the_case_after_the_request_timeout(pki):
    released = asyncio.Event()  # set once the case is over, so the server can shut down

    async def silent(service: str, message: Message) -> Message:
        await released.wait()
        return Response(response=EiResponse())

    async with scripted_vtn(pki.server_context(), silent) as vtn:
        try:
            (result,) = await run_cases(settings(pki, vtn.url), CommandOperator("true"),
                                        select(["N1_0010"]))
        finally:
            released.set()
    assert not result.passed and "TimeoutError" in result.reason
    assert result.exchanges[0].status is None


async def test_a_vtn_that_never_acts_fails_the_case_after_the_wait(pki):
    async def idle(service: str, message: Message) -> Message | web.StreamResponse:
        if isinstance(message, CreatePartyRegistration):
            return CreatedPartyRegistration(
                response=EiResponse(request_id=message.request_id), registration_id="reg-1",
                ven_id="ven-1", vtn_id="IDLE-VTN", profiles=PROFILES,
                requested_oadr_poll_freq=timedelta(seconds=1))
        assert isinstance(message, Poll)
        return Response(response=EiResponse(), ven_id="ven-1")

    async with scripted_vtn(pki.server_context(), idle) as vtn:
        (result,) = await run_cases(settings(pki, vtn.url), CommandOperator("true"),
                                    select(["E1_1020"]))
    assert not result.passed
    assert "arrived within 0.5 s of polling" in result.reason
    assert [s.kind.value for s in result.steps] == ["create_event"]


async def test_a_rate_limited_request_is_sent_again_after_its_retry_after(pki):
    answered: list[str] = []

    async def limited(service: str, message: Message) -> Message | web.StreamResponse:
        answered.append(type(message).__name__)
        if len(answered) == 1:  # the first request meets the rate limit, unread
            return web.Response(status=429, text="slow down", headers={"Retry-After": "0"})
        return CreatedPartyRegistration(
            response=EiResponse(request_id=message.request_id), vtn_id="LIMITED-VTN",
            profiles=PROFILES)

    async with scripted_vtn(pki.server_context(), limited) as vtn:
        (result,) = await run_cases(settings(pki, vtn.url), CommandOperator("true"),
                                    select(["N1_0010"]))
    assert result.passed, result.reason
    assert [e.status for e in result.exchanges] == [429, 200]
    assert answered == ["QueryRegistration", "QueryRegistration"]


async def test_a_vtn_that_keeps_refusing_for_rate_fails_the_case_after_four_tries(pki):
    async def limited(service: str, message: Message) -> web.StreamResponse:
        return web.Response(status=429, text="slow down", headers={"Retry-After": "0"})

    async with scripted_vtn(pki.server_context(), limited) as vtn:
        (result,) = await run_cases(settings(pki, vtn.url), CommandOperator("true"),
                                    select(["N1_0010"]))
    assert not result.passed and "HTTP 429" in result.reason
    assert [e.status for e in result.exchanges] == [429] * 4


def test_settings_name_the_vtn_and_xmpp_takes_pushes(tmp_path):
    files = {"cert": tmp_path / "c", "key": tmp_path / "k", "ca": tmp_path / "a"}
    target = XmppAddress(host="127.0.0.1", port=5222, domain="localhost", jid="v@localhost/o")
    with pytest.raises(ConformanceError, match="by push"):
        HarnessSettings(xmpp=target, **files)
    with pytest.raises(ConformanceError, match="name the VTN"):
        HarnessSettings(**files)
    over_xmpp = HarnessSettings(xmpp=target, push=True, **files)
    assert (over_xmpp.transport, over_xmpp.target) == ("xmpp", "xmpp:v@localhost/o")


async def test_a_vtn_replying_without_end_is_cut_at_the_cap(pki):
    """Red team: the harness read a reply body for as long as the VTN under test sent it (up to
    the request timeout: 156 MB a second on loopback); now it stops past ``MAX_BODY_BYTES``."""
    sent = [0]

    async def flooding(service: str, message: Message) -> web.StreamResponse:
        return web.Response(body=endless_xml(sent), content_type="application/xml")

    async with scripted_vtn(pki.server_context(), flooding) as vtn:
        (result,) = await run_cases(replace(settings(pki, vtn.url), request_timeout_s=5.0),
                                    CommandOperator("true"), select(["N1_0010"]))
    assert not result.passed
    (exchange,) = result.exchanges
    assert exchange.error is not None and f"over {MAX_BODY_BYTES} bytes" in exchange.error
    assert sent[0] < 16 * MAX_BODY_BYTES  # what the socket buffers took before the harness left
