"""GCP pseudonyms from a pseudonymisation entity: equal across aggregators (the TSO sees one
connection point offered twice), not computable from an EAN by an aggregator or the TSO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import privacy
from cbp.roles.messages import PoolDevice, pool_metadata
from cbp.roles.registry import PoolRegistry
from privacy import PseudonymisationEntity
from schemas import InvalidData
from tests.kit.vaults import WHO, mandated_vault

EAN = "871687120000012345"
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
PE_KEY = bytes(range(100, 132))
TSO = "TSO:TENNET-NL"


def test_two_aggregators_get_one_gcp_pseudonym_and_the_tso_refuses_the_second(
    tmp_path: Path
) -> None:
    pe = PseudonymisationEntity(PE_KEY)
    a, device_a = mandated_vault(
        tmp_path / "a.sqlite", bytes(range(32)), pe, "AGG-A", ean=EAN, now=NOW)
    b, device_b = mandated_vault(
        tmp_path / "b.sqlite", bytes(range(1, 33)), pe, "AGG-B", ean=EAN, now=NOW)
    gcp_a = a.pseudonyms.of(device_a.device_uuid, TSO, privacy.GCP_PURPOSE, "2025-03", **WHO)
    gcp_b = b.pseudonyms.of(device_b.device_uuid, TSO, privacy.GCP_PURPOSE, "2025-03", **WHO)
    assert gcp_a == gcp_b and privacy.is_pseudonym(gcp_a)
    assert gcp_a != a.pseudonyms.of(device_a.device_uuid, TSO, privacy.GCP_PURPOSE, "2025-04",
                                    **WHO)  # a new month, a new pseudonym
    assert gcp_a != a.pseudonyms.of(device_a.device_uuid, "DSO:STEDIN", privacy.GCP_PURPOSE,
                                    "2025-03", **WHO)  # another recipient, another pseudonym
    assert pe.answers == {"AGG-A": 3, "AGG-B": 1}
    registry = PoolRegistry()
    for ven, vault, device, gcp in (("AGG-A", a, device_a, gcp_a), ("AGG-B", b, device_b, gcp_b)):
        name = vault.pseudonyms.of(device.device_uuid, TSO, "balancing-validation", "2025-03",
                                   **WHO)
        report = pool_metadata(f"POOL-{ven}", [PoolDevice(
            pseudonym=name, device_class="HEAT_PUMP", power_bucket="3-7kW", zone="NL")],
            gcps=[gcp], created=NOW, sample_period=timedelta(seconds=4),
            market_context="http://cbp")
        if ven == "AGG-A":
            assert registry.register(ven, [report]) == ("POOL-AGG-A",)
        else:
            with pytest.raises(InvalidData, match="already registered by another aggregator"):
                registry.register(ven, [report])
    a.close()
    b.close()
