"""The aggregator's upstream codec refuses a report carrying an EAN, and the audit catches one
planted in a capture folder; the CBP profile's messages are XSD-valid and read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cbp.devices import DeviceClass
from cbp.market import Direction, IspRef, Offer
from cbp.roles import FilteredCodec
from cbp.roles.messages import (
    PoolDevice,
    offer_intervals,
    parse_offer,
    parse_pool_devices,
    pool_metadata,
)
from privacy import (
    ONBOARDING_PURPOSE,
    FileKeyProvider,
    IdentityVault,
    OutboundFilter,
    OutboundPolicy,
    OutboundRefused,
    audit_run,
)
from privacy.keys import new_key_line
from schemas import RegisterReport, Report, ReportInterval, ReportPayload, UpdateReport

from ..schemas.xsd_oracle import assert_xsd_valid

_EAN = "871234567890123456"
_AT = datetime(2025, 3, 14, 13, 0, tzinfo=UTC)
_REQUEST = "9f0c3e1a-4b5d-4c6e-8f70-123456789abc"


def _vault(tmp_path: Path) -> IdentityVault:
    key = tmp_path / "master.key"
    key.write_text(new_key_line(1))
    vault = IdentityVault(tmp_path / "vault.db", FileKeyProvider(key))
    vault.prosumers.add(prosumer_id="P1", name="Jan Jansen", postcode="1234 AB", ean=_EAN,
                        contract_id="C1")
    vault.consents.grant("P1", ONBOARDING_PURPOSE)
    return vault


def _codec(vault: IdentityVault) -> FilteredCodec:
    policy = OutboundPolicy(pool_ids=frozenset({"POOL"}),
                            device_classes=frozenset(c.value for c in DeviceClass),
                            power_buckets=frozenset({"7-11kW"}),
                            report_specifier_ids=frozenset({"POOL:telemetry"}))
    gate = OutboundFilter(policy, vault=vault)
    gate.echoes.learn(("AB:CD", "q1"))  # the venID and report request the TSO gave
    return FilteredCodec(gate)


def _report(r_id: str) -> UpdateReport:
    return UpdateReport(request_id=_REQUEST, ven_id="AB:CD", reports=(Report(
        report_request_id="q1", report_specifier_id="POOL:telemetry", created_date_time=_AT,
        intervals=(ReportInterval(dtstart=_AT, duration=timedelta(seconds=4),
                                  payloads=(ReportPayload(r_id=r_id, value=9.2),)),)),))


def test_filtered_codec_refuses_a_planted_ean_and_passes_the_pool_row(tmp_path: Path) -> None:
    with _vault(tmp_path) as vault:
        codec = _codec(vault)
        assert b"POOL" in codec.encode(_report("POOL"))
        with pytest.raises(OutboundRefused):
            codec.encode(_report(_EAN))
        assert codec.refused == 1


def test_audit_catches_an_ean_planted_in_a_capture(tmp_path: Path) -> None:
    with _vault(tmp_path) as vault:
        folder = tmp_path / "run" / "captures" / "aggregator-tso"
        folder.mkdir(parents=True)
        clean = _codec(vault).encode(_report("POOL"))
        (folder / "000001-EiReport-request.xml").write_bytes(clean)
        values = vault.identity_values(requested_by="test", reason="audit")
        assert audit_run(tmp_path / "run", values).passed
        (folder / "000002-EiReport-request.xml").write_bytes(
            clean.replace(b"POOL:telemetry", _EAN.encode()))
        result = audit_run(tmp_path / "run", values)
        assert not result.passed and result.findings


def test_pool_registration_and_offer_round_trip_through_the_wire() -> None:
    devices = (PoolDevice(pseudonym="psn1_" + "a" * 26, device_class="ev_charger",
                          power_bucket="7-11kW", zone="NL"),)
    gcps = ("psn1_" + "b" * 26,)
    metadata = pool_metadata("POOL", devices, gcps=gcps, created=_AT,
                             sample_period=timedelta(seconds=4),
                             market_context="http://cbp.example/afrr/NL")
    from schemas import Codec
    codec = Codec()
    wire = codec.encode(RegisterReport(request_id="r", reports=(metadata,), ven_id="AB:CD"))
    assert_xsd_valid(wire)
    decoded = codec.decode(wire)
    assert isinstance(decoded, RegisterReport)
    assert parse_pool_devices(decoded.reports[0]) == ("POOL", devices, gcps)
    isp = IspRef(day=_AT.date(), index=57)
    offer = Offer(offer_id="POOL:2025-03-14:57:up", aggregator_id="AB:CD", isp=isp,
                  direction=Direction.UP, mw=Decimal("5"), price_eur_per_mwh=Decimal("180"),
                  available_mw=Decimal("5.6"))
    report = Report(report_request_id="q", report_specifier_id="POOL:offers",
                    created_date_time=_AT, report_name="x-FLEX_OFFER",
                    intervals=offer_intervals(offer, isp_start=_AT,
                                              isp_length=timedelta(minutes=15)))
    wire = codec.encode(UpdateReport(request_id="u", reports=(report,), ven_id="AB:CD"))
    assert_xsd_valid(wire)
    back = codec.decode(wire)
    assert isinstance(back, UpdateReport)
    assert parse_offer(back.reports[0], aggregator_id="AB:CD", isp=isp) == offer
