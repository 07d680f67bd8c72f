"""The x-SETTLEMENT statement, TSO -> aggregator, at role level
(docs/architecture.md#the-cbp-profile-on-openadr, last row).

A real activation the pool cannot fully deliver (200 kW asked of 120 kW of flex) is run sample by
sample, settled by the TSO from what it stored, and its statement travels to the aggregator as
the TSO's oadrUpdateReport in a poll reply. Asserted: the TSO offered the report first (its own
oadrRegisterReport); the aggregator's copy equals ``TsoNode.settle``'s statement value for value
as ``Decimal`` (requested, delivered, capped, ratio, prices, payment and a non-zero penalty);
the messages are XSD-valid and carry no device data; the aggregator's answer is accepted.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cbp.roles.profile import SETTLEMENT_REPORT
from tests.schemas.xsd_oracle import assert_xsd_valid

from .rolekit import Rig, drain

FIELDS = ("requested_mwh", "delivered_mwh", "settled_mwh", "ratio", "clearing_price_eur_per_mwh",
          "bid_price_eur_per_mwh", "payment_eur", "penalty_eur")


async def test_the_aggregator_receives_the_tso_statement_exactly(rig: Rig) -> None:
    agg, tso = rig.aggregator, rig.tso
    assert agg.upstream is not None
    # lead of 40 s: the +20-s baselines cover the activation from its first sample
    activation = await rig.activation((Decimal("0.2"),) * 15, lead=timedelta(seconds=40))
    await rig.dispatched(activation)
    end = tso.window(activation)[1]
    timing = rig.settings.timing
    await rig.run_until(end + timing.telemetry_batch * 2 + timing.telemetry_grace)
    closed_until = agg.status().closed_until
    assert closed_until is not None and closed_until >= end
    await agg.flush_pool_rows()
    await agg.upstream.flush_reports()
    errors = len(agg.status().errors)

    statement = await tso.settle(activation.event_id)
    assert statement.ratio is not None and statement.ratio < Decimal("0.9")
    assert statement.penalty_eur > 0 and statement.payment_eur > 0
    await drain(agg.upstream)

    received = agg.status().statements[activation.event_id]
    for name in FIELDS:
        value = getattr(received, name)
        assert isinstance(value, Decimal), name
        assert value == getattr(statement, name), name
    assert received.isp_start == tso.calendar.isp_start(activation.award.isp)
    assert agg.status().errors[errors:] == (), "the TSO refused the aggregator's answer"
    assert [str(r.report_name) for r in agg.upstream.vtn_reports] == [SETTLEMENT_REPORT]

    replies = [p.read_bytes() for p in sorted(rig.captures.glob("*-OadrPoll-reply.xml"))]
    carrying = [r for r in replies if SETTLEMENT_REPORT.encode() in r]
    assert len(carrying) == 2  # the offer (oadrRegisterReport), then the data (oadrUpdateReport)
    assert b"oadrRegisterReport" in carrying[0] and b"oadrUpdateReport" in carrying[1]
    for reply in carrying:
        assert_xsd_valid(reply)
        assert b"psn1_" not in reply  # the statement is the pool's: no device pseudonym
    # settling again sends nothing more (one statement per activation)
    await tso.settle(activation.event_id)
    await drain(agg.upstream)
    again = [p for p in sorted(rig.captures.glob("*-OadrPoll-reply.xml"))
             if SETTLEMENT_REPORT.encode() in p.read_bytes()]
    assert len(again) == 2
