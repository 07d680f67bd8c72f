"""The outbound filter on real encoded OpenADR messages, typed records, and the k-threshold."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import privacy
import schemas
from privacy import ActivationWindow, IdentityVault, OutboundFilter, OutboundPolicy
from schemas import Report, ReportInterval, ReportPayload, UpdateReport

from .conftest import WHO, Household

TSO = "TSO:TENNET-NL"
ACT = datetime(2025, 3, 14, 14, 3, tzinfo=UTC)
WINDOW = ActivationWindow(start=ACT - timedelta(minutes=5), end=ACT + timedelta(minutes=15))
POLICY = OutboundPolicy(pool_ids=frozenset({"VDB-AFRR-01"}))


def telemetry(
    rid: str, *, value: float = 7.5, at: datetime = ACT, request_id: str = "req-1",
    specifier: str = "TELEMETRY-VDB-AFRR-01", ven_id: str = "AGG-VDB",
) -> bytes:  # fmt: skip
    interval = ReportInterval(
        dtstart=at, duration=timedelta(seconds=4), payloads=(ReportPayload(r_id=rid, value=value),)
    )
    report = Report(
        report_request_id="rr-1", report_specifier_id=specifier, created_date_time=ACT,
        report_name="TELEMETRY_USAGE", intervals=(interval,),
    )  # fmt: skip
    return schemas.encode(UpdateReport(request_id=request_id, reports=(report,), ven_id=ven_id))


@pytest.fixture
def gate(vault: IdentityVault) -> OutboundFilter:
    return OutboundFilter(POLICY, vault=vault)


@pytest.fixture
def psn(vault: IdentityVault, household: Household) -> str:
    return vault.pseudonym_of(household.device.device_uuid, TSO, "balancing-validation",
                              "2025-03", **WHO)


def test_clean_per_device_telemetry_passes_unchanged(gate: OutboundFilter, psn: str) -> None:
    data = telemetry(psn)
    assert gate.admit_xml(data, windows=(WINDOW,)) is data
    pool = telemetry("VDB-AFRR-01", value=3.0123, at=ACT + timedelta(hours=3))
    assert gate.admit_xml(pool) is pool  # pool rows: no window or resolution rule


def test_refuses_a_message_carrying_an_ean(
    gate: OutboundFilter, psn: str, household: Household, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="crowdflex.privacy.outbound"),
        pytest.raises(privacy.OutboundRefused, match="EAN") as refused,
    ):
        gate.admit_xml(
            telemetry(psn, request_id=f"req-{household.prosumer.ean}"), windows=(WINDOW,)
        )
    assert any("EAN" in f for f in refused.value.findings)
    assert household.prosumer.ean not in str(refused.value)  # the refusal does not leak it again
    assert "refused, nothing sent" in caplog.text


def test_refuses_an_unknown_ean_shaped_number(psn: str) -> None:
    bare = OutboundFilter(POLICY)  # no vault: the shape alone is enough
    with pytest.raises(privacy.OutboundRefused, match="EAN-shaped"):
        bare.admit_xml(telemetry(psn, specifier="871690000000000042"), windows=(WINDOW,))


@pytest.mark.parametrize("where", ["request_id", "specifier", "ven_id"])
def test_refuses_vault_values_anywhere(
    gate: OutboundFilter, psn: str, household: Household, where: str
) -> None:
    uuid = household.device.device_uuid
    leaks = {
        "postcode": ("Dutch-postcode", "3511AB"),
        "device_uuid": ("vault device_uuid", str(uuid)),
        "device_uuid hex": ("vault device_uuid", uuid.hex.upper()),
        "serial": ("vault serial", f"x-{household.device.serial}"),
        "name": ("vault name", household.prosumer.name),
        "sha256 serial": (
            "unkeyed sha256",
            hashlib.sha256(household.device.serial.encode()).hexdigest(),
        ),
    }
    for expected, leak in leaks.values():
        with pytest.raises(privacy.OutboundRefused, match=expected):
            gate.admit_xml(telemetry(psn, **{where: leak}), windows=(WINDOW,))


def test_rid_must_be_a_pseudonym_or_a_configured_id(gate: OutboundFilter) -> None:
    with pytest.raises(privacy.OutboundRefused, match="neither a pseudonym"):
        gate.admit_xml(telemetry("device-42"), windows=(WINDOW,))


def test_per_device_rows_only_inside_windows_and_on_the_grid(
    gate: OutboundFilter, psn: str
) -> None:
    with pytest.raises(privacy.OutboundRefused, match="outside activation windows"):
        gate.admit_xml(telemetry(psn, at=ACT + timedelta(hours=1)), windows=(WINDOW,))
    with pytest.raises(privacy.OutboundRefused, match="outside activation windows"):
        gate.admit_xml(telemetry(psn))  # idle: no window at all
    with pytest.raises(privacy.OutboundRefused, match=r"finer than 0\.1 kW"):
        gate.admit_xml(telemetry(psn, value=7.55), windows=(WINDOW,))


def test_doctype_is_refused(gate: OutboundFilter) -> None:
    with pytest.raises(privacy.OutboundRefused, match="DOCTYPE"):
        gate.admit_xml(b"<!DOCTYPE x><x/>")


def test_typed_records(gate: OutboundFilter, psn: str) -> None:
    good = privacy.DeviceRecord(
        pseudonym=psn, device_class="EV_CHARGER", power_bucket="7.4-11kW", zone="NL",
        pool_id="VDB-AFRR-01", gcp_pseudonym=psn,
    )  # fmt: skip
    reading = privacy.DeviceMeasurement(pseudonym=psn, at=ACT, kw=Decimal("7.5"))
    assert gate.admit_records((good, reading), windows=(WINDOW,)) == (good, reading)
    bad = privacy.DeviceRecord(
        pseudonym="871687120000000001", device_class="EV_CHARGER", power_bucket="11.04kW",
        zone="NL", pool_id="VDB-AFRR-01", gcp_pseudonym="871687120000000001",
    )  # fmt: skip
    with pytest.raises(privacy.OutboundRefused) as refused:
        gate.admit_records((good, bad, reading))
    text = str(refused.value)
    for problem in ("record 1: pseudonym", "power bucket", "GCP", "record 2: measurement"):
        assert problem in text


def test_k_threshold_merges_small_groups() -> None:
    table = {"EV": tuple(range(1200)), "HP": tuple(range(600)), "BAT": tuple(range(4)),
             "V2G": tuple(range(3)), "PV": tuple(range(5)), "FRIDGE": tuple(range(10))}  # fmt: skip
    merged = privacy.merge_small_groups(table, k=10)
    assert set(merged) == {"EV", "FRIDGE", "HP", "OTHER"}  # exactly k stays on its own
    assert len(merged["OTHER"]) == 12
    assert sum(len(v) for v in merged.values()) == 1822  # nothing lost
    assert all(len(v) >= 10 for v in merged.values())


def test_k_threshold_never_leaves_a_small_other() -> None:
    merged = privacy.merge_small_groups({"A": (1,) * 30, "B": (2,) * 12, "C": (3,) * 2}, k=10)
    # OTHER would hold 2 devices alone: the smallest kept group (B) joins it.
    assert merged == {"A": (1,) * 30, "OTHER": (3,) * 2 + (2,) * 12}
    assert privacy.merge_small_groups({"A": (1,) * 3}, k=10) == {"OTHER": (1,) * 3}
    assert privacy.merge_small_groups({}, k=10) == {}
    with pytest.raises(ValueError):
        privacy.merge_small_groups({}, k=0)
