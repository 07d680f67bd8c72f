"""x-SETTLEMENT and late-row wire forms without the network: XSD-valid, exact round trips."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cbp.market import Direction, IspRef, TsoStatement
from cbp.pool import PoolRow
from cbp.roles.profile import LATE_QUALITY
from cbp.roles.statement import parse_statement, settlement_metadata, statement_report
from cbp.roles.tsolink import LinkWatch, PoolRowBuffer
from schemas import Codec, RegisterReport, Report, UpdateReport
from tests.schemas.xsd_oracle import assert_xsd_valid

START = datetime(2025, 3, 14, 13, 0, tzinfo=UTC)
CODEC = Codec()


def _decimals(places: int, top: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, top * 10**places).map(lambda n: Decimal(n).scaleb(-places))


@given(requested=_decimals(6, 50), delivered=_decimals(6, 50), ratio=_decimals(4, 2),
       payment=_decimals(2, 10**6), penalty=_decimals(2, 10**6))
def test_a_statement_survives_the_wire_value_for_value(requested: Decimal, delivered: Decimal,
                                                       ratio: Decimal, payment: Decimal,
                                                       penalty: Decimal) -> None:
    statement = TsoStatement(
        aggregator_id="AGG", isp=IspRef(day=date(2025, 3, 14), index=57),
        direction=Direction.UP, requested_mwh=requested, delivered_mwh=delivered,
        settled_mwh=min(requested, delivered), ratio=ratio,
        clearing_price_eur_per_mwh=Decimal("212.40"), bid_price_eur_per_mwh=Decimal("180"),
        payment_eur=payment, penalty_eur=penalty)
    report = statement_report(statement, report_request_id="AGG-settlement", pool_id="VDB-AFRR-01",
                              event_id="act-1",
                              isp_start=START, isp_length=timedelta(minutes=15), created=START)
    wire = CODEC.encode(UpdateReport(request_id="r1", reports=(report,), ven_id="AGG"))
    assert_xsd_valid(wire)
    decoded = CODEC.decode(wire)
    assert isinstance(decoded, UpdateReport)
    got = parse_statement(decoded.reports[0])
    assert (got.event_id, got.isp_start) == ("act-1", START)
    for name in ("requested_mwh", "delivered_mwh", "settled_mwh", "ratio", "payment_eur",
                 "penalty_eur", "clearing_price_eur_per_mwh", "bid_price_eur_per_mwh"):
        assert getattr(got, name) == getattr(statement, name), name


def test_the_settlement_offer_is_valid_metadata() -> None:
    wire = CODEC.encode(RegisterReport(request_id="r2", ven_id="AGG", reports=(
        settlement_metadata("VDB-AFRR-01", created=START),)))
    assert_xsd_valid(wire)


def test_rows_held_over_an_outage_go_out_once_and_marked_late() -> None:
    period = timedelta(seconds=4)
    buffer = PoolRowBuffer()
    rows = [PoolRow(at=START + i * period, mw=Decimal("9.1"), reporting=10, missing=())
            for i in range(4)]
    buffer.add(rows[0])
    buffer.add(rows[1])
    buffer.hold()  # the link is down: these two will be late
    buffer.add(rows[2])
    intervals = buffer.take("VDB-AFRR-01", period)
    assert [(i.dtstart, i.payloads[0].data_quality) for i in intervals] == [
        (rows[0].at, LATE_QUALITY), (rows[1].at, LATE_QUALITY), (rows[2].at, None)]
    assert buffer.take("VDB-AFRR-01", period) == ()
    report = Report(report_request_id="req", report_specifier_id="VDB-AFRR-01:telemetry",
                    created_date_time=START, report_id="r", report_name="TELEMETRY_USAGE",
                    intervals=intervals)
    wire = CODEC.encode(UpdateReport(request_id="r3", ven_id="AGG", reports=(report,)))
    assert_xsd_valid(wire)
    assert wire.count(b"<oadr:oadrDataQuality>x-late</oadr:oadrDataQuality>") == 2


def test_the_link_watch_releases_once_per_outage() -> None:
    now = [START]
    watch = LinkWatch(clock=lambda: now[0], timeout=timedelta(seconds=5),
                      release_after=timedelta(seconds=60))
    watch.contact()
    assert not watch.down(START + timedelta(seconds=6))  # slow to answer is not down
    now[0] = START + timedelta(seconds=2)
    watch.failure()  # an exchange failed: the TSO could not be reached
    assert not watch.down(START + timedelta(seconds=5))
    assert watch.down(START + timedelta(seconds=6))
    now[0] = START
    assert not watch.release_due(START + timedelta(seconds=59))
    assert watch.release_due(START + timedelta(seconds=60))
    assert not watch.release_due(START + timedelta(seconds=90))
    now[0] = START + timedelta(seconds=100)
    watch.contact()  # back, then silent again: a new outage may release again
    assert watch.release_due(START + timedelta(seconds=160))
