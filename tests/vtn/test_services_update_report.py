"""oadrUpdateReport through a real VTN: the certificate check shares the points' transaction, so a
report is stored for its own VEN only, with or without a venID in the payload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas import (
    CancelPartyRegistration,
    Report,
    ReportInterval,
    ReportName,
    ReportPayload,
    UpdatedReport,
    UpdateReport,
)
from tests.kit.vtn import running_vtn

from .harness import code_of, raw_ven

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))


def _data(ven_id: str | None, first: int = 0) -> UpdateReport:
    report = Report(
        report_request_id="rr-1", report_specifier_id="spec-1", created_date_time=NOW,
        report_name=ReportName.TELEMETRY_USAGE, dtstart=NOW,
        intervals=tuple(ReportInterval(dtstart=NOW + timedelta(seconds=4 * i),
                                       duration=timedelta(seconds=4),
                                       payloads=(ReportPayload(r_id="rid-1", value=float(i)),))
                        for i in range(first, first + 3)),
    )
    return UpdateReport(request_id="upd", reports=(report,), ven_id=ven_id)


async def test_update_report_without_ven_id_is_stored_for_the_certificates_ven(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as stranger:
        await ven.register()
        reply = await ven.post("EiReport", _data(None))
        assert isinstance(reply, UpdatedReport) and reply.response.code == 200
        assert reply.ven_id == ven.ven_id
        stored = await vtn.ctx.storage.reports.points(ven.ven_id, *WINDOW)
        assert [p.value for p in stored] == [0.0, 1.0, 2.0]
        # An unregistered certificate is refused, with or without a venID, and stores nothing.
        assert code_of(await stranger.post("EiReport", _data(None, first=10))) == 463
        assert code_of(await stranger.post("EiReport", _data(ven.ven_id, first=10))) == 463
        assert len(await vtn.ctx.storage.reports.points(ven.ven_id, *WINDOW)) == 3


async def test_update_report_after_the_registration_is_cancelled_is_463(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register()
        assert isinstance(await ven.post("EiReport", _data(ven.ven_id)), UpdatedReport)
        await ven.post("EiRegisterParty", CancelPartyRegistration(
            request_id="c", registration_id=ven.registration_id, ven_id=ven.ven_id))
        assert code_of(await ven.post("EiReport", _data(ven.ven_id, first=10))) == 463
        assert code_of(await ven.post("EiReport", _data(None, first=20))) == 463
        assert len(await vtn.ctx.storage.reports.points(ven.ven_id, *WINDOW)) == 3
