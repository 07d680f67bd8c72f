"""Per-VEN authorisation (463), wrong service (453), reports and opts through a real VTN."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from schemas import (
    Availability,
    CanceledOpt,
    CancelOpt,
    CreatedEvent,
    CreatedOpt,
    CreatedReport,
    CreateOpt,
    CreateReport,
    EiResponse,
    EventResponse,
    InvalidData,
    OptReason,
    OptType,
    Poll,
    QualifiedEventId,
    ReadingType,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportDescription,
    ReportName,
    ReportType,
    RequestEvent,
    Response,
    SamplingRate,
    Target,
    UpdatedReport,
)
from tests.kit.telemetry import DATA_AT, telemetry_data
from tests.kit.vtn import running_vtn
from vtn.services import Handlers, events, reports
from vtn.storage import ReportRequestStatus

from .harness import code_of, raw_ven, sample_event

NOW = DATA_AT  # when the reports of telemetry_data start


def _metadata() -> RegisterReport:
    report = Report(
        report_request_id="0", report_specifier_id="spec-1", created_date_time=NOW,
        report_name=ReportName.METADATA_TELEMETRY_USAGE, duration=timedelta(hours=1),
        descriptions=(ReportDescription(
            r_id="rid-1", report_type=ReportType.USAGE, reading_type=ReadingType.DIRECT_READ,
            sampling_rate=SamplingRate(min_period=timedelta(seconds=4),
                                       max_period=timedelta(seconds=60))),),
    )
    return RegisterReport(request_id="reg-rep", reports=(report,))


async def test_spoofed_ven_id_is_refused_and_other_data_untouched(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as b, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[3])) as stranger:
        await a.register()
        await b.register()
        await events.publish_event(vtn.ctx, sample_event("ev-b", Target(ven_ids=(b.ven_id,))))
        queued_for_b = await vtn.ctx.storage.outbox.pending_count(b.ven_id)

        forged_ack = CreatedEvent(
            response=EiResponse(request_id="x"), ven_id=b.ven_id,
            event_responses=(EventResponse(request_id="x", event_id="ev-b",
                                           modification_number=0, opt_type=OptType.OPT_OUT),))
        assert code_of(await a.post("EiEvent", forged_ack)) == 463
        assert code_of(await a.post("EiReport", telemetry_data(b.ven_id, "whatever"))) == 463
        assert code_of(await a.post("OadrPoll", Poll(ven_id=b.ven_id))) == 463
        assert code_of(await stranger.post("OadrPoll", Poll(ven_id=b.ven_id))) == 463

        assert await vtn.ctx.storage.events.deliveries("ev-b") == ()
        assert await vtn.ctx.storage.outbox.pending_count(b.ven_id) == queued_for_b
        assert await vtn.ctx.storage.reports.points(b.ven_id, NOW - timedelta(days=1),
                                                    NOW + timedelta(days=1)) == ()


async def test_valid_payload_on_wrong_service_is_453(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register()
        assert code_of(await ven.post("EiEvent", Poll(ven_id=ven.ven_id))) == 453
        assert code_of(await ven.post("EiReport", CreatedEvent(
            response=EiResponse(), ven_id=ven.ven_id))) == 453
        assert code_of(await ven.post("OadrPoll", _metadata())) == 453


async def test_report_registration_subscription_and_idempotent_data(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register()
        await ven.drain()
        registered = await ven.post("EiReport", _metadata())
        assert isinstance(registered, RegisteredReport) and registered.response.code == 200
        (request,) = registered.report_requests
        assert request.report_specifier.granularity == timedelta(seconds=4)
        rrid = request.report_request_id
        stored = await vtn.ctx.storage.reports.get_request(ven.ven_id, rrid)
        assert stored is not None and stored.status is ReportRequestStatus.PENDING

        created = CreatedReport(response=EiResponse(request_id="reg-rep"),
                                pending_reports=(rrid,), ven_id=ven.ven_id)
        assert code_of(await ven.post("EiReport", created)) == 200
        stored = await vtn.ctx.storage.reports.get_request(ven.ven_id, rrid)
        assert stored is not None and stored.status is ReportRequestStatus.ACTIVE

        for _ in range(2):  # a re-send stores nothing twice
            updated = await ven.post("EiReport", telemetry_data(ven.ven_id, rrid))
            assert isinstance(updated, UpdatedReport) and updated.response.code == 200
            assert updated.cancel_report is None
        points = await vtn.ctx.storage.reports.points(ven.ven_id, NOW, NOW + timedelta(hours=1))
        assert [p.value for p in points] == [1.25, 2.25, 3.25]

        # VTN-initiated subscription and cancel are queued for the VEN
        await reports.subscribe(vtn.ctx, ven.ven_id, request)
        assert await reports.cancel_subscription(vtn.ctx, ven.ven_id, rrid)
        queued = await ven.drain()
        assert [type(m).__name__ for m in queued] == ["CreateReport", "CancelReport"]
        assert isinstance(queued[0], CreateReport)
        after = await ven.post("EiReport", telemetry_data(ven.ven_id, rrid, value=9.0))
        assert isinstance(after, UpdatedReport)
        assert after.cancel_report is not None and after.cancel_report.report_request_ids == (rrid,)


async def test_a_report_registration_the_policy_refuses_leaves_the_earlier_one(pki, storage_url):
    """Tried: a second oadrRegisterReport that the application's subscription hook refuses
    (InvalidData, as the TSO refuses a GCP another aggregator holds). The VEN gets 454 and the
    VTN still holds the first registration's METADATA and its subscription, nothing of the
    second."""
    refuse = False

    def policy(ven_id: str, offered: tuple[Report, ...]) -> None:
        if refuse:
            raise InvalidData("refused by policy")

    async with running_vtn(pki, storage_url, handlers=Handlers(report_subscriptions=policy)
                           ) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register()
        await ven.drain()
        first = await ven.post("EiReport", _metadata())
        assert isinstance(first, RegisteredReport) and len(first.report_requests) == 1
        refuse = True
        second = _metadata()
        second = replace(second, reports=(replace(second.reports[0],
                                                  report_specifier_id="spec-2"),))
        refused = await ven.post("EiReport", second)
        assert code_of(refused) == 454
        described = await vtn.ctx.storage.reports.descriptions(ven.ven_id)
        assert [d.report_specifier_id for d in described] == ["spec-1"]
        requests = await vtn.ctx.storage.reports.requests(ven.ven_id)
        assert [r.report_specifier_id for r in requests] == ["spec-1"]


async def test_opt_create_and_cancel(pki, storage_url):
    seen = []
    from vtn.services import Handlers

    async with running_vtn(pki, storage_url,
                           handlers=Handlers(on_opt=lambda v, m: seen.append(type(m).__name__))
                           ) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register()
        opt = CreateOpt(opt_id="opt-1", opt_type=OptType.OPT_OUT,
                        opt_reason=OptReason.NOT_PARTICIPATING, ven_id=ven.ven_id,
                        vavailability=(Availability(dtstart=NOW, duration=timedelta(hours=2)),),
                        created_date_time=NOW, request_id="o1")
        created = await ven.post("EiOpt", opt)
        assert isinstance(created, CreatedOpt) and created.opt_id == "opt-1"
        (schedule,) = await vtn.ctx.storage.opts.in_force(ven.ven_id, NOW + timedelta(hours=1))
        assert schedule.opt_reason == "notParticipating"
        canceled = await ven.post("EiOpt", CancelOpt(request_id="o2", opt_id="opt-1",
                                                     ven_id=ven.ven_id))
        assert isinstance(canceled, CanceledOpt) and canceled.response.code == 200
        assert await vtn.ctx.storage.opts.for_ven(ven.ven_id) == ()
        again = await ven.post("EiOpt", CancelOpt(request_id="o3", opt_id="opt-1",
                                                  ven_id=ven.ven_id))
        assert code_of(again) == 452
        assert seen == ["CreateOpt", "CancelOpt"]


async def test_a_refusal_echoes_the_refused_payloads_request_id(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register()
        refused = await ven.post("EiEvent", RequestEvent(request_id="req-000123",
                                                         ven_id="someone-else"))
        assert isinstance(refused, Response)
        assert (refused.response.code, refused.response.request_id) == (463, "req-000123")
        ack = CreatedEvent(response=EiResponse(request_id="dist-7"), ven_id=ven.ven_id,
                           event_responses=(EventResponse(
                               request_id="dist-7", event_id="no-such-event",
                               modification_number=0, opt_type=OptType.OPT_IN),))
        refused = await ven.post("EiEvent", ack)
        assert isinstance(refused, Response) and refused.response.request_id == "dist-7"
        assert refused.response.code == 452


async def test_an_opt_for_an_event_never_sent_to_the_ven_is_452(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as other:
        await ven.register()
        await other.register()
        await events.publish_event(vtn.ctx, sample_event("ev-other",
                                                         Target(ven_ids=(other.ven_id,))))
        await other.drain()

        def opt_out(opt_id: str, event_id: str) -> CreateOpt:
            return CreateOpt(opt_id=opt_id, opt_type=OptType.OPT_OUT,
                             opt_reason=OptReason.NOT_PARTICIPATING, ven_id=ven.ven_id,
                             created_date_time=NOW, request_id=opt_id,
                             qualified_event_id=QualifiedEventId(event_id=event_id,
                                                                 modification_number=0))

        assert code_of(await ven.post("EiOpt", opt_out("o-unknown", "no-such-event"))) == 452
        assert code_of(await ven.post("EiOpt", opt_out("o-foreign", "ev-other"))) == 452
        assert await vtn.ctx.storage.opts.for_ven(ven.ven_id) == ()
        await events.publish_event(vtn.ctx, sample_event("ev-mine", Target(ven_ids=(ven.ven_id,))))
        await ven.drain()
        created = await ven.post("EiOpt", opt_out("o-mine", "ev-mine"))
        assert isinstance(created, CreatedOpt) and created.response.code == 200
