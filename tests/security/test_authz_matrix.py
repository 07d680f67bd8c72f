"""Authorisation matrix: a registered VEN (the attacker, its own valid certificate) tries every
VTN endpoint against another VEN's (the victim's) events, reports, opts and registration; the admin
API is tried without its token and through the VEN port.

One VTN per module (SQLite, real mutual TLS): after every attempt the victim's whole state is
compared with a snapshot taken before the matrix ran, so an attempt that "only" changed something
fails at the attempt that did it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from schemas import (
    SERVICE_PREFIX,
    Availability,
    CanceledPartyRegistration,
    CanceledReport,
    CancelOpt,
    CancelPartyRegistration,
    CancelReport,
    CreatedEvent,
    CreatedPartyRegistration,
    CreatedReport,
    CreateOpt,
    CreatePartyRegistration,
    DistributeEvent,
    EiResponse,
    EventResponse,
    Message,
    OptReason,
    OptType,
    Poll,
    QueryRegistration,
    ReadingType,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportDescription,
    ReportInterval,
    ReportName,
    ReportPayload,
    ReportType,
    RequestEvent,
    Response,
    SamplingRate,
    Target,
    UpdateReport,
)
from tests.kit.vtn import RunningVtn, running_vtn
from tests.vtn.harness import RawVen, raw_ven, sample_event
from vtn.admin import create_admin_app
from vtn.app import SERVICES
from vtn.services import events

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TOKEN = "authz-matrix-admin-token-0123456789"
EVENT = "ev-victim"
OPT = "opt-victim"


@dataclass
class World:
    vtn: RunningVtn
    victim: RawVen
    attacker: RawVen
    report_request_id: str
    snapshot: dict[str, Any]
    admin_url: str


def _metadata(ven_id: str) -> RegisterReport:
    report = Report(
        report_request_id="0", report_specifier_id="spec-1", created_date_time=NOW,
        report_name=ReportName.METADATA_TELEMETRY_USAGE, duration=timedelta(hours=1),
        descriptions=(ReportDescription(
            r_id="rid-1", report_type=ReportType.USAGE, reading_type=ReadingType.DIRECT_READ,
            sampling_rate=SamplingRate(min_period=timedelta(seconds=4),
                                       max_period=timedelta(seconds=60))),),
    )
    return RegisterReport(request_id="reg-rep", reports=(report,), ven_id=ven_id)


def _data(ven_id: str | None, request_id: str, value: float) -> UpdateReport:
    report = Report(
        report_request_id=request_id, report_specifier_id="spec-1", created_date_time=NOW,
        report_name=ReportName.TELEMETRY_USAGE, dtstart=NOW,
        intervals=(ReportInterval(dtstart=NOW, duration=timedelta(seconds=4),
                                  payloads=(ReportPayload(r_id="rid-1", value=value),)),),
    )
    return UpdateReport(request_id="upd", reports=(report,), ven_id=ven_id)


def _opt(ven_id: str, opt_id: str) -> CreateOpt:
    return CreateOpt(opt_id=opt_id, opt_type=OptType.OPT_IN, opt_reason=OptReason.ECONOMIC,
                     ven_id=ven_id, created_date_time=NOW, request_id="o",
                     vavailability=(Availability(dtstart=NOW, duration=timedelta(hours=2)),))


def _ack(ven_id: str, event_id: str = EVENT) -> CreatedEvent:
    return CreatedEvent(response=EiResponse(request_id="x"), ven_id=ven_id, event_responses=(
        EventResponse(request_id="x", event_id=event_id, modification_number=0,
                      opt_type=OptType.OPT_OUT),))


async def _victim_state(world_vtn: RunningVtn, victim: RawVen, rrid: str) -> dict[str, Any]:
    storage = world_vtn.ctx.storage
    return {
        "registration": await storage.vens.get(victim.ven_id),
        "memberships": await storage.vens.memberships(victim.ven_id),
        "opts": await storage.opts.for_ven(victim.ven_id),
        "event": await storage.events.get(EVENT),
        "acks": await storage.events.deliveries(EVENT),
        "report_request": await storage.reports.get_request(victim.ven_id, rrid),
        "descriptions": await storage.reports.descriptions(victim.ven_id),
        "points": await storage.reports.points(victim.ven_id, NOW - timedelta(days=1),
                                               NOW + timedelta(days=1)),
        "queued": await storage.outbox.pending_count(victim.ven_id),
    }


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(pki, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('authz') / 'vtn.db'}"
    async with running_vtn(pki, url, rate_limit_per_s=None) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[0])) as victim, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as attacker:
        await victim.register("victim")
        await attacker.register("attacker")
        await events.publish_event(vtn.ctx, sample_event(EVENT, Target(ven_ids=(victim.ven_id,))))
        await victim.drain()  # the victim has its event (delivery recorded)
        registered = await victim.post("EiReport", _metadata(victim.ven_id))
        assert isinstance(registered, RegisteredReport)
        rrid = registered.report_requests[0].report_request_id
        await victim.post("EiReport", CreatedReport(response=EiResponse(request_id="reg-rep"),
                                                    pending_reports=(rrid,),
                                                    ven_id=victim.ven_id))
        await victim.post("EiReport", _data(victim.ven_id, rrid, 1.5))
        await victim.post("EiOpt", _opt(victim.ven_id, OPT))
        runner = web.AppRunner(create_admin_app(lambda: vtn.app[SERVICES], token=TOKEN))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            snapshot = await _victim_state(vtn, victim, rrid)
            assert snapshot["points"] and snapshot["opts"] and snapshot["report_request"]
            yield World(vtn, victim, attacker, rrid, snapshot, f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()


@dataclass(frozen=True, slots=True)
class Attempt:
    service: str
    resource: str
    what: str
    build: Callable[[str, str, World], Message]  # (victim venID, attacker venID, world)
    code: int | None  # the refusal's OpenADR code; None: answered, but about the attacker only


def _v(world: World) -> Any:
    return world.victim


ATTEMPTS = (
    # --- events
    Attempt("EiEvent", "events", "oadrRequestEvent naming the victim's venID",
            lambda v, a, w: RequestEvent(request_id="r", ven_id=v), 463),
    Attempt("EiEvent", "events", "oadrCreatedEvent optOut in the victim's name",
            lambda v, a, w: _ack(v), 463),
    Attempt("EiEvent", "events", "oadrCreatedEvent for the victim's event in its own name",
            lambda v, a, w: _ack(a), 452),
    Attempt("EiEvent", "events", "oadrRequestEvent in its own name (must not list the victim's)",
            lambda v, a, w: RequestEvent(request_id="r", ven_id=a), None),
    Attempt("OadrPoll", "events", "oadrPoll naming the victim's venID (steals its queue)",
            lambda v, a, w: Poll(ven_id=v), 463),
    Attempt("EiEvent", "events", "oadrResponse in the victim's name",
            lambda v, a, w: Response(response=EiResponse(request_id="q"), ven_id=v), 463),
    # --- opts
    Attempt("EiOpt", "opts", "oadrCancelOpt of the victim's opt in the victim's name",
            lambda v, a, w: CancelOpt(request_id="c", opt_id=OPT, ven_id=v), 463),
    Attempt("EiOpt", "opts", "oadrCancelOpt of the victim's optID in its own name",
            lambda v, a, w: CancelOpt(request_id="c", opt_id=OPT, ven_id=a), 452),
    Attempt("EiOpt", "opts", "oadrCreateOpt overwriting the victim's optID in the victim's name",
            lambda v, a, w: _opt(v, OPT), 463),
    Attempt("EiOpt", "opts", "oadrCreateOpt reusing the victim's optID in its own name",
            lambda v, a, w: _opt(a, OPT), None),
    # --- reports
    Attempt("EiReport", "reports", "oadrRegisterReport in the victim's name",
            lambda v, a, w: _metadata(v), 463),
    Attempt("EiReport", "reports", "oadrUpdateReport data in the victim's name",
            lambda v, a, w: _data(v, w.report_request_id, 99.0), 463),
    Attempt("EiReport", "reports", "oadrUpdateReport to the victim's reportRequestID, own name",
            lambda v, a, w: _data(a, w.report_request_id, 99.0), None),
    Attempt("EiReport", "reports", "oadrCreatedReport for the victim's request, victim's name",
            lambda v, a, w: CreatedReport(response=EiResponse(), ven_id=v,
                                          pending_reports=(w.report_request_id,)), 463),
    Attempt("EiReport", "reports", "oadrCreatedReport for the victim's request, own name",
            lambda v, a, w: CreatedReport(response=EiResponse(), ven_id=a,
                                          pending_reports=(w.report_request_id,)), None),
    Attempt("EiReport", "reports", "oadrCancelReport of the victim's request, victim's name",
            lambda v, a, w: CancelReport(request_id="c", ven_id=v,
                                         report_request_ids=(w.report_request_id,)), 463),
    Attempt("EiReport", "reports", "oadrCanceledReport of the victim's request, victim's name",
            lambda v, a, w: CanceledReport(response=EiResponse(), ven_id=v,
                                           pending_reports=(w.report_request_id,)), 463),
    # --- registration
    Attempt("EiRegisterParty", "registration", "oadrCancelPartyRegistration, victim's name",
            lambda v, a, w: CancelPartyRegistration(
                request_id="c", registration_id=_v(w).registration_id, ven_id=v), 463),
    Attempt("EiRegisterParty", "registration",
            "oadrCancelPartyRegistration of the victim's registrationID in its own name",
            lambda v, a, w: CancelPartyRegistration(
                request_id="c", registration_id=_v(w).registration_id, ven_id=a), 452),
    Attempt("EiRegisterParty", "registration", "oadrCreatePartyRegistration as the victim",
            lambda v, a, w: CreatePartyRegistration(request_id="r", ven_id=v,
                                                    http_pull_model=True), 463),
    Attempt("EiRegisterParty", "registration",
            "oadrCreatePartyRegistration taking over the victim's registrationID",
            lambda v, a, w: CreatePartyRegistration(
                request_id="r", registration_id=_v(w).registration_id,
                http_pull_model=True), 452),
    Attempt("EiRegisterParty", "registration", "oadrCanceledPartyRegistration, victim's name",
            lambda v, a, w: CanceledPartyRegistration(
                response=EiResponse(), registration_id=_v(w).registration_id, ven_id=v), 463),
    Attempt("EiRegisterParty", "registration", "oadrQueryRegistration (must not reveal it)",
            lambda v, a, w: QueryRegistration(request_id="q"), None),
)


def _leaks(world: World, sent: bytes, reply: Message, raw: bytes) -> None:
    """Nothing of the victim's comes back to the attacker, beyond echoes of what it sent."""
    for secret in (world.victim.ven_id, world.victim.registration_id, EVENT, OPT,
                   world.report_request_id):
        if secret.encode() not in sent:
            assert secret.encode() not in raw, secret
    if isinstance(reply, DistributeEvent):
        assert reply.events == ()
    if isinstance(reply, CreatedPartyRegistration):
        assert reply.ven_id == world.attacker.ven_id


@pytest.mark.parametrize("attempt", ATTEMPTS,
                         ids=lambda a: f"{a.service}-{a.resource}-{a.what}")
async def test_vtn_endpoint_refuses_another_vens_resource(world: World, attempt: Attempt
                                                         ) -> None:
    from tests.vtn.harness import CODEC

    message = attempt.build(world.victim.ven_id, world.attacker.ven_id, world)
    sent = CODEC.encode(message)
    async with world.attacker.session.post(
            f"{world.vtn.url}/{attempt.service}", data=sent,
            headers={"Content-Type": "application/xml"}) as http:
        assert http.status == 200, attempt.what
        raw = await http.read()
    reply = CODEC.decode(raw)
    if attempt.code is not None:
        assert isinstance(reply, Response), (attempt.what, reply)
        assert reply.response.code == attempt.code, (attempt.what, reply.response.description)
    _leaks(world, sent, reply, raw)
    after = await _victim_state(world.vtn, world.victim, world.report_request_id)
    assert after == world.snapshot, attempt.what


def _admin_requests(world: World) -> tuple[tuple[str, str], ...]:
    v, rrid = world.victim.ven_id, world.report_request_id
    return (
        ("GET", "/vens"), ("PUT", f"/vens/{v}/memberships"), ("POST", f"/vens/{v}/reregister"),
        ("POST", f"/vens/{v}/cancel"), ("POST", f"/vens/{v}/evict"),
        ("GET", f"/vens/{v}/opts"), ("GET", f"/vens/{v}/reports"),
        ("POST", f"/vens/{v}/reports/subscriptions"),
        ("DELETE", f"/vens/{v}/reports/subscriptions/{rrid}"),
        ("GET", f"/vens/{v}/reports/data"), ("GET", "/events"), ("POST", "/events"),
        ("GET", f"/events/{EVENT}"), ("PUT", f"/events/{EVENT}"),
        ("POST", f"/events/{EVENT}/cancel"),
    )


ADMIN_CREDENTIALS = {
    "no Authorization header": {},
    "wrong bearer token": {"Authorization": "Bearer not-the-admin-token-at-all"},
    "token without the Bearer scheme": {"Authorization": TOKEN},
    "basic auth with the token as password": {"Authorization": f"Basic {TOKEN}"},
}


@pytest.mark.parametrize("credential", ADMIN_CREDENTIALS)
async def test_every_admin_endpoint_needs_the_token(world: World, credential: str) -> None:
    async with aiohttp.ClientSession(headers=ADMIN_CREDENTIALS[credential]) as http:
        for method, path in _admin_requests(world):
            async with http.request(method, world.admin_url + path, json={}) as reply:
                assert reply.status == 401, (credential, method, path)
                assert world.victim.ven_id.encode() not in await reply.read()
    assert await _victim_state(world.vtn, world.victim, world.report_request_id) == world.snapshot


async def test_the_token_is_what_opens_the_admin_api(world: World) -> None:
    """The 401s above are the token's doing: with it, the same API answers."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.get(world.admin_url + "/vens") as reply:
        assert reply.status == 200
        assert world.victim.ven_id in await reply.text()


async def test_the_ven_port_has_no_admin_routes(world: World) -> None:
    paths = {route.resource.canonical for route in world.vtn.app.router.routes()
             if route.resource is not None}
    assert paths == {SERVICE_PREFIX + "/{service}"}
    base = world.vtn.url.removesuffix(SERVICE_PREFIX)
    headers = {"Authorization": f"Bearer {TOKEN}"}  # even with the token, over the VEN's mTLS
    for method, path in _admin_requests(world):
        for prefix in ("", "/admin", SERVICE_PREFIX):
            async with world.attacker.session.request(method, base + prefix + path, json={},
                                                      headers=headers) as reply:
                assert reply.status in (404, 405), (method, prefix + path)
    assert await _victim_state(world.vtn, world.victim, world.report_request_id) == world.snapshot
