"""What the DPIA says about the running nodes, held against them.

A real activation (offer, award, dispatch, per-device metering) fills every store first: the
aggregator's raw device telemetry, the TSO's per-device rows under pseudonyms and its pool rows,
and the captured aggregator->TSO messages. Retention: the clock jumps past each age in turn and
each store empties exactly when its age is passed, while pool-level rows stay. Metering: only
the dispatched devices have per-device rows at the TSO, as many as the DPIA says one
activation sends, and the aggregator keys raw telemetry by device certificate, as it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web

from cbp.roles import AggregatorNode, CbpSettings, TsoNode
from cbp.roles.profile import metering_scope
from cbp.roles.retention import RetentionRule, RetentionTask, aggregator_rules, tso_rules
from privacy import (
    FileKeyProvider,
    Holder,
    IdentityVault,
    PrivacyConfig,
    PrivacyConfigError,
    Store,
    config_from_table,
    erase_prosumer,
    month_of,
    retention_schedule,
)
from privacy.keys import new_key_line
from tests.kit.pki import Pki
from tomlconfig import ConfigError, Table
from vtn.app import STORAGE
from vtn.storage import ReportPoint, VenRegistration

from .rolekit import WAIT_S, Clock, Rig, vtn_config


def _count(db: Path, where: str = "1", table: str = "report_points") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


def _device_messages(db: Path) -> int:
    """The aggregator's events to devices, their deliveries and its delivered messages."""
    return (_count(db, table="events") + _count(db, table="event_deliveries")
            + _count(db, "delivered_at IS NOT NULL", table="outbox"))


def _captures(rig: Rig) -> int:
    return sum(1 for _ in rig.captures.glob("*.xml"))


SETPOINTS = 8


async def _metered(rig: Rig) -> int:
    """Runs an activation of SETPOINTS samples to its end; returns how many devices it
    dispatched."""
    agg, tso = rig.aggregator, rig.tso
    assert agg.upstream is not None
    activation = await rig.activation((Decimal("0.05"),) * SETPOINTS,
                                      lead=timedelta(seconds=40))
    await rig.dispatched(activation)
    end = tso.window(activation)[1]
    timing = rig.settings.timing
    await rig.run_until(end + rig.settings.pool.msp_after + timing.telemetry_batch * 2
                        + timing.telemetry_grace)
    await agg.flush_pool_rows()
    await agg.upstream.flush_reports()
    return len(agg.activations[activation.event_id].device_events)


async def test_per_device_rows_are_the_dispatched_devices_and_as_many_as_the_report_says(
        rig: Rig, tmp_path: Path) -> None:
    dispatched = await _metered(rig)
    assert 0 < dispatched < len(rig.nodes)  # 50 kW of 20-kW devices: some idle devices too
    with sqlite3.connect(tmp_path / "tso.db") as conn:
        rows = dict(conn.execute("SELECT r_id, count(*) FROM report_points"
                                 " WHERE r_id LIKE 'psn1_%' GROUP BY r_id").fetchall())
    assert len(rows) == dispatched, "an idle device sent per-device rows"
    scope = metering_scope(rig.settings)
    expected = scope.samples_per_device(rig.period * SETPOINTS)
    assert set(rows.values()) == {expected}
    with sqlite3.connect(tmp_path / "aggregator.db") as conn:
        keys = {row[0] for row in conn.execute("SELECT DISTINCT ven_id FROM report_points")}
    assert keys == {node.identity.fingerprint for node in rig.nodes}


def test_the_nodes_purge_every_store_the_report_dates_at_its_age() -> None:
    """The DPIA's retention table and the nodes' retention rules are the same list."""
    config = PrivacyConfig(raw_retention=timedelta(days=41), tso_device_retention=timedelta(
        days=17), capture_retention=timedelta(days=5))
    never = Path("unused")  # the rules are only listed here, not run

    def storage() -> object:
        raise AssertionError("not run")

    running = {(Holder.AGGREGATOR, r.store, r.age)
               for r in aggregator_rules(config, storage)}  # type: ignore[arg-type]
    running |= {(Holder.TSO, r.store, r.age)
                for r in tso_rules(config, storage, never)}  # type: ignore[arg-type]
    dated = {(e.holder, e.store, e.age) for e in retention_schedule(config) if e.age is not None}
    assert running == dated
    assert {age.days for *_, age in dated} == {41, 17, 5}


async def test_every_store_ages_out_at_its_configured_age(rig: Rig, tmp_path: Path) -> None:
    assert await _metered(rig) > 0
    tso_db, agg_db = tmp_path / "tso.db", tmp_path / "aggregator.db"
    device_rows = "r_id LIKE 'psn1_%'"
    pool_rows = "r_id NOT LIKE 'psn1_%'"
    assert _count(tso_db, device_rows) > 0, "no per-device metering reached the TSO"
    pools, raw, captures = _count(tso_db, pool_rows), _count(agg_db), _captures(rig)
    messages = _device_messages(agg_db)
    assert pools > 0 and raw > 0 and captures > 0 and messages > 0
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
    assert _count(agg_db) == raw and _device_messages(agg_db) == messages
    await at(ages.raw_retention + timedelta(days=1))
    assert _count(agg_db) == 0 and _device_messages(agg_db) == 0
    assert _count(tso_db, pool_rows) == pools


def _privacy(table: dict[str, object]) -> PrivacyConfig:
    return config_from_table(Table({"privacy": table}, source="node.toml", base=Path(".")
                                   ).table("privacy"))


def test_the_privacy_table_sets_the_ages_and_refuses_nonsense() -> None:
    parsed = _privacy({"raw_retention_days": 30, "tso_device_retention_days": 20,
                       "capture_retention_days": 7})
    assert (parsed.raw_retention, parsed.tso_device_retention, parsed.capture_retention) == (
        timedelta(days=30), timedelta(days=20), timedelta(days=7))
    for bad in ({"raw_retention_days": 0}, {"tso_device_retention_days": "90"},
                {"capture_retention_days": 10**12}, {"capture_retention_days": True}):
        with pytest.raises(ConfigError, match=r"^node\.toml: privacy\.\w+_days: expected an "
                                              r"integer from 1 to 36500, got "):
            _privacy(bad)
    with pytest.raises(PrivacyConfigError, match=r"\[privacy\] capture_retention_days"):
        _privacy({"capture_retention_days": 91})  # captures hold per-device rows: <= 90
    with pytest.raises(ConfigError, match=r"^node\.toml: unknown key privacy\.raw_retention$"):
        _privacy({"raw_retention": 30})  # a typo does not silently keep the default


@pytest.mark.parametrize(("role", "key"), [("tso", "tso_device_retention_days"),
                                         ("aggregator", "raw_retention_days")])
def test_the_nodes_read_the_privacy_table_of_their_config(role: str, key: str,
                                                           tmp_path: Path) -> None:
    """`crowdflex tso|aggregator` read [privacy] from their own TOML (the example's): a bad age
    stops them before anything starts, naming the key."""
    example = (Path(__file__).parents[2] / "examples" / f"{role}.toml").read_text()
    config = tmp_path / "examples" / f"{role}.toml"
    config.parent.mkdir()
    for relative in re.findall(r'"(\.\./[^"]+\.(?:pem|key))"', example):  # the files it names
        placeholder = config.parent / relative
        placeholder.parent.mkdir(parents=True, exist_ok=True)
        placeholder.write_text("")
    assert f"\n{key} = " in example
    config.write_text(example.replace(f"\n{key} = ", f"\n{key} = 0 # ", 1))
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from cbp.cli import main; sys.exit(main())", role,
         "--config", str(config)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert key in done.stderr


def _capture(path: Path, at: datetime) -> None:
    path.write_bytes(b"<r/>")
    os.utime(path, (at.timestamp(), at.timestamp()))


async def test_a_tso_back_after_a_month_away_purges_as_it_starts(tmp_path: Path,
                                                                 pki: Pki) -> None:
    """No run_once here: the node's own task runs at start, on the node's clock."""
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    config = vtn_config(tmp_path, "tso", pki)
    captures = tmp_path / "captures"
    ages = PrivacyConfig()
    device = ReportPoint(ven_id="AGG", report_request_id="rr", report_specifier_id="POOL",
                         r_id="psn1_" + "a" * 26, dtstart=clock.now, received_at=clock.now)
    pool = replace(device, r_id="POOL")

    async def started() -> tuple[TsoNode, web.AppRunner]:
        node = TsoNode(config, CbpSettings.compressed(), capture_dir=captures, clock=clock)
        runner = web.AppRunner(node.app)
        await runner.setup()
        async with asyncio.timeout(WAIT_S):
            await node.retention.passed.wait()
        return node, runner

    node, runner = await started()
    storage = node.app[STORAGE]
    await storage.vens.register(VenRegistration(
        ven_id="AGG", registration_id="reg", fingerprint="AA:BB", ven_name="aggregator",
        transport_address=None, http_pull_model=True, created_at=clock.now))
    assert await storage.reports.add_points([device, pool]) == 2
    _capture(captures / "000001-EiReport-request.xml", clock.now)
    await runner.cleanup()

    clock.now += ages.tso_device_retention + timedelta(days=31)  # down for a month past the age
    _capture(captures / "000002-EiReport-request.xml", clock.now)  # written at restart
    node, runner = await started()
    try:
        left = await node.app[STORAGE].reports.points("AGG", device.dtstart,
                                                      device.dtstart + timedelta(seconds=1))
        assert [p.r_id for p in left] == ["POOL"], "per-device rows purged at start, pool kept"
        assert sorted(p.name for p in captures.iterdir()) == ["000002-EiReport-request.xml"]
    finally:
        await runner.cleanup()


async def test_the_task_runs_again_every_interval_and_a_failing_store_stops_no_other(
        tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """README: each node checks as it starts and then every hour; a store whose purge fails is
    logged and tried again at the next run while the others are purged. (A millisecond
    interval stands in for the hour; the passes are awaited, not timed.)"""
    node = TsoNode(vtn_config(tmp_path, "tso", pki), CbpSettings.compressed(),
                   capture_dir=tmp_path / "captures")
    assert node.retention.interval == timedelta(hours=1)
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    cutoffs: list[datetime] = []

    async def fails(_cutoff: datetime) -> int:
        raise OSError("disk unreadable")

    async def purges(cutoff: datetime) -> int:
        cutoffs.append(cutoff)
        return 0

    task = RetentionTask((RetentionRule(store=Store.CAPTURES, age=timedelta(days=30), purge=fails),
                          RetentionRule(store=Store.TSO_DEVICE_ROWS, age=timedelta(days=90),
                                        purge=purges)),
                         clock=clock, interval=timedelta(milliseconds=1))  # fmt: skip
    lifetime = task.lifetime(web.Application())
    await anext(lifetime)
    try:
        async with asyncio.timeout(WAIT_S):
            for _ in range(3):
                await task.passed.wait()
                task.passed.clear()
                clock.now += timedelta(hours=1)
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await anext(lifetime)
    assert len(cutoffs) >= 3 and cutoffs == sorted(cutoffs)
    assert cutoffs[0] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC) - timedelta(days=90)
    failed = [r for r in caplog.records if "retention of captured messages failed" in r.message]
    assert len(failed) >= 3


async def test_an_aggregator_back_after_a_month_away_purges_as_it_starts(
        tmp_path: Path, pki: Pki) -> None:
    """The same for the aggregator's raw device telemetry: purged by its own task at start."""
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    config = vtn_config(tmp_path, "aggregator", pki)
    key_file = tmp_path / "vault.key"
    key_file.write_text(new_key_line(1))
    sample = ReportPoint(ven_id="DEV", report_request_id="rr", report_specifier_id="TELEMETRY",
                         r_id="kw", dtstart=clock.now, received_at=clock.now)

    async def started() -> tuple[AggregatorNode, IdentityVault, web.AppRunner]:
        vault = IdentityVault(tmp_path / "vault.db", FileKeyProvider(key_file), clock=clock)
        node = AggregatorNode(settings=CbpSettings.compressed(), downstream=config,
                              vault=vault, tso_url="https://127.0.0.1:1",
                              upstream_tls=pki.client_context(),
                              outbox_path=tmp_path / "outbox.db", clock=clock)
        runner = web.AppRunner(node.app)
        await runner.setup()
        async with asyncio.timeout(WAIT_S):
            await node.retention.passed.wait()
        return node, vault, runner

    node, vault, runner = await started()
    storage = node.app[STORAGE]
    await storage.vens.register(VenRegistration(
        ven_id="DEV", registration_id="reg", fingerprint="CC:DD", ven_name="device",
        transport_address=None, http_pull_model=True, created_at=clock.now))
    assert await storage.reports.add_points([sample]) == 1
    await runner.cleanup()
    vault.close()

    clock.now += PrivacyConfig().raw_retention + timedelta(days=31)
    node, vault, runner = await started()
    try:
        assert await node.app[STORAGE].reports.points(
            "DEV", sample.dtstart, sample.dtstart + timedelta(seconds=1)) == ()
    finally:
        await runner.cleanup()
        vault.close()


async def test_a_new_registration_replaces_the_last_at_the_tso(rig: Rig, tmp_path: Path) -> None:
    """The DPIA's "pool registration" row: per-device registration data stays at the TSO only
    until the aggregator registers again (here a new month's pseudonyms)."""
    agg, tso_db = rig.aggregator, tmp_path / "tso.db"
    before = {e.pseudonym for e in agg.book.registered()}
    before |= {e.gcp_pseudonym for e in agg.book.registered()}
    assert all(_named(tso_db, name) for name in before)
    rig.clock.now += timedelta(days=32)  # always another month
    assert await agg.register_pool() == len(rig.nodes)
    after = {e.pseudonym for e in agg.book.registered()}
    assert after.isdisjoint(before) and all(_named(tso_db, name) for name in after)
    assert [name for name in before if _named(tso_db, name)] == []
    held = {d.pseudonym for pools in rig.tso.pools.values() for ds in pools.values() for d in ds}
    assert held == after


def _named(db: Path, name: str) -> bool:
    """Whether any cell of any table of the file names ``name``."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return any(name in repr(row)
                   for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))


async def test_the_node_memory_row_says_what_outlives_every_age(rig: Rig) -> None:
    """The DPIA's "aggregator node memory" row: past activations' devices and the payout
    totals stay in the running node whatever the ages, and an erasure leaves the totals."""
    (row,) = [e for e in retention_schedule(PrivacyConfig()) if e.store is Store.NODE_MEMORY]
    assert row.age is None and "until the node stops" in row.kept
    agg = rig.aggregator
    assert await _metered(rig) > 0
    month = month_of(rig.clock.now, rig.settings.rules.timezone)
    dispatched = {d for a in agg.activations.values() for d in a.device_events}
    paid = {line.prosumer_id for line in agg.ledger.statement(month).lines}
    assert dispatched and paid
    rig.clock.now += PrivacyConfig().raw_retention + timedelta(days=1)
    await rig.aggregator.retention.run_once()
    assert {d for a in agg.activations.values() for d in a.device_events} == dispatched
    erased = sorted(paid)[0]
    erase_prosumer(rig.vault, erased, PrivacyConfig(), requested_by="test", reason="row check")
    await agg.erasures.deliver_pending()
    assert erased in {line.prosumer_id for line in agg.ledger.statement(month).lines}
