"""A run folder as the demo leaves it: captured messages that carry a device's TSO pseudonym."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import privacy
import schemas
from privacy import IdentityVault
from schemas import Report, ReportInterval, ReportPayload, UpdateReport
from tests.kit.vaults import WHO, Household

__all__ = ["AT", "captured_report", "run_dir"]

AT = datetime(2025, 3, 14, 14, 3, tzinfo=UTC)


def captured_report(rid: str, request_id: str = "req-1") -> bytes:
    """An aggregator's telemetry UpdateReport whose one payload names ``rid``."""
    report = Report(
        report_request_id="rr-1", report_specifier_id="TELEMETRY", created_date_time=AT,
        report_name="TELEMETRY_USAGE",
        intervals=(ReportInterval(dtstart=AT, duration=timedelta(seconds=4),
                                  payloads=(ReportPayload(r_id=rid, value=7.5),)),),
    )  # fmt: skip
    return schemas.encode(UpdateReport(request_id=request_id, reports=(report,), ven_id="AGG"))


@pytest.fixture
def run_dir(tmp_path: Path, vault: IdentityVault, household: Household) -> Path:
    """A run folder with three captured reports under the household device's pseudonym."""
    captures = tmp_path / "run" / privacy.CAPTURE_SUBDIR
    captures.mkdir(parents=True)
    psn = vault.pseudonyms.of(household.device.device_uuid, "TSO:TENNET-NL", "gcp", "2025-03",
                              **WHO)
    for n in range(3):
        (captures / f"{n:04d}-oadrUpdateReport.xml").write_bytes(captured_report(psn, f"req-{n}"))
    return tmp_path / "run"
