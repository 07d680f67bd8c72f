"""Retention in the running nodes: the TSO's and the aggregator's stores age out at the
``[privacy]`` settings they run with, moved by the injected clock (no waiting).

A real activation (offer, award, dispatch, per-device metering) fills every store first: the
aggregator's raw device telemetry, the TSO's per-device rows under pseudonyms and its pool rows,
and the captured aggregator->TSO messages. Then the clock jumps past each retention age in turn
and each store empties exactly when its age is passed, while pool-level rows stay.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from privacy import PrivacyConfig, PrivacyConfigError, config_from_document

from .rolekit import Rig


def _count(db: Path, where: str = "1") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM report_points WHERE {where}").fetchone()[0])


def _captures(rig: Rig) -> int:
    return sum(1 for _ in rig.captures.glob("*.xml"))


async def _metered(rig: Rig) -> None:
    agg, tso = rig.aggregator, rig.tso
    assert agg.upstream is not None
    activation = await rig.activation((Decimal("0.05"),) * 8, lead=timedelta(seconds=40))
    await rig.dispatched(activation)
    end = tso.window(activation)[1]
    timing = rig.settings.timing
    await rig.run_until(end + rig.settings.pool.msp_after + timing.telemetry_batch * 2
                        + timing.telemetry_grace)
    await agg.flush_pool_rows()
    await agg.upstream.flush_reports()


async def test_every_store_ages_out_at_its_configured_age(rig: Rig, tmp_path: Path) -> None:
    await _metered(rig)
    tso_db, agg_db = tmp_path / "tso.db", tmp_path / "aggregator.db"
    device_rows = "r_id LIKE 'psn1_%'"
    pool_rows = "r_id NOT LIKE 'psn1_%'"
    assert _count(tso_db, device_rows) > 0, "no per-device metering reached the TSO"
    pools, raw, captures = _count(tso_db, pool_rows), _count(agg_db), _captures(rig)
    assert pools > 0 and raw > 0 and captures > 0
    ages = PrivacyConfig()  # what the rig's nodes run with
    assert ages.capture_retention < ages.tso_device_retention < ages.raw_retention
    start = rig.clock.now

    async def at(age: timedelta) -> None:
        rig.clock.now = start + age
        await rig.tso.retention.run_once()
        await rig.aggregator.retention.run_once()

    await at(ages.capture_retention - timedelta(days=1))
    assert (_captures(rig), _count(tso_db, device_rows) > 0, _count(agg_db)) == (
        captures, True, raw)
    await at(ages.capture_retention + timedelta(days=1))
    assert _captures(rig) == 0
    assert _count(tso_db, device_rows) > 0 and _count(agg_db) == raw
    await at(ages.tso_device_retention + timedelta(days=1))
    assert _count(tso_db, device_rows) == 0
    assert _count(tso_db, pool_rows) == pools, "pool-level rows are not personal data: kept"
    assert _count(agg_db) == raw
    await at(ages.raw_retention + timedelta(days=1))
    assert _count(agg_db) == 0
    assert _count(tso_db, pool_rows) == pools


def test_the_privacy_table_sets_the_ages_and_refuses_nonsense() -> None:
    parsed = config_from_document({"privacy": {"raw_retention_days": 30,
                                               "tso_device_retention_days": 20,
                                               "capture_retention_days": 7}})
    assert (parsed.raw_retention, parsed.tso_device_retention, parsed.capture_retention) == (
        timedelta(days=30), timedelta(days=20), timedelta(days=7))
    for bad in ({"raw_retention_days": 0}, {"tso_device_retention_days": "90"},
                {"capture_retention_days": 10**12}, {"capture_retention_days": True},
                {"capture_retention_days": 91}):  # captures hold per-device rows: <= 90
        with pytest.raises(PrivacyConfigError, match=r"\[privacy\] \w+_days"):
            config_from_document({"privacy": bad})


@pytest.mark.parametrize("role", ["tso", "aggregator"])
def test_the_nodes_read_the_privacy_table_of_their_config(role: str, tmp_path: Path) -> None:
    """`crowdflex tso|aggregator` read [privacy] from their own TOML: a bad age stops them before
    anything starts, naming the key."""
    example = Path(__file__).parents[2] / "examples" / f"{role}.toml"
    config = tmp_path / f"{role}.toml"
    config.write_text(example.read_text() + "\n[privacy]\ntso_device_retention_days = 0\n")
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from cbp.cli import main; sys.exit(main())", role,
         "--config", str(config)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "tso_device_retention_days" in done.stderr
