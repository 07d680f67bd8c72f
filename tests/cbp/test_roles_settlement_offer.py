"""x-SETTLEMENT over the VTN's offered reports (vtn.services.offered): the TSO offers the report
per pool, the aggregator requests it once, a statement sent for that request reaches the
aggregator and its oadrUpdatedReport is recorded on the send; an unreadable one is answered 454."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cbp.market import Direction, IspRef, TsoStatement
from cbp.roles.statement import SETTLEMENT_SUFFIX, statement_report
from schemas import Report, ReportInterval, ReportPayload
from tests.kit.pki import Pki
from vtn.services.offered import live_requests, send_report

from .rolekit import Rig, build_rig, drain


@pytest.fixture
async def rig(tmp_path: Path, pki: Pki) -> AsyncIterator[Rig]:
    built = await build_rig(tmp_path, pki, devices=2)
    try:
        yield built
    finally:
        await built.close()


def _statement() -> TsoStatement:
    return TsoStatement(
        aggregator_id="AGG", isp=IspRef(day=date(2026, 3, 14), index=57), direction=Direction.UP,
        requested_mwh=Decimal("0.05"), delivered_mwh=Decimal("0.03"),
        settled_mwh=Decimal("0.03"), ratio=Decimal("0.6"),
        clearing_price_eur_per_mwh=Decimal("212.40"), bid_price_eur_per_mwh=Decimal("180"),
        payment_eur=Decimal("6.37"), penalty_eur=Decimal("1.99"))


async def test_the_aggregator_requests_once_and_its_answer_is_recorded(rig: Rig) -> None:
    agg, tso = rig.aggregator, rig.tso
    assert agg.upstream is not None and agg.upstream.registration is not None
    ven_id = agg.upstream.registration.ven_id
    spec = rig.settings.pool_id + SETTLEMENT_SUFFIX
    await drain(agg.upstream)  # the TSO's METADATA, the request, the TSO's oadrCreatedReport
    (request,) = await live_requests(tso.ctx, ven_id, report_specifier_id=spec)
    assert list(agg.upstream.vtn.requests) == [request.report_request_id]
    await agg.register_pool()  # the pool registers again: the offer is renewed...
    await drain(agg.upstream)
    assert [r.report_request_id for r in await live_requests(tso.ctx, ven_id)] == [
        request.report_request_id]  # ...and not requested twice

    now = tso.now()
    sent = await send_report(tso.ctx, ven_id, statement_report(
        _statement(), report_request_id=request.report_request_id,
        pool_id=rig.settings.pool_id, event_id="act-9", isp_start=now,
        isp_length=timedelta(minutes=15), created=now), request_id="settlement:act-9")
    broken = await send_report(tso.ctx, ven_id, Report(
        report_request_id=request.report_request_id, report_specifier_id=spec,
        created_date_time=now, report_name="x-SETTLEMENT", intervals=(ReportInterval(
            dtstart=now, payloads=(ReportPayload(r_id="settlement-payment-eur", value=1.0),)),)))
    await drain(agg.upstream)
    assert agg.status().statements["act-9"].penalty_eur == Decimal("1.99")
    codes = {s.request_id: s.response_code for s in await tso.ctx.storage.offered.sends(ven_id)}
    assert codes == {sent: 200, broken: 454}
    assert agg.upstream.refused == [("oadrUpdateReport", 454)]
