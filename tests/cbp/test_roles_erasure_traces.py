"""Erasure leaves no trace in the files, over real nodes (tests.cbp.rolekit: mutual TLS, SQLite).

Where an erased pseudonym or device certificate could survive a deletion: SQLite free pages and
WAL frames of the TSO's and the aggregator's databases and of the aggregator's outbox, the TSO's
capture folder (the notice itself names every pseudonym it erases), rows the aggregator queued
while the TSO was away and sends later. Each test reads the raw bytes of every file, not what a
query returns. Also: a household with two devices behind one connection point, whose device and
connection-point pseudonyms all go while its neighbours' stay.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import privacy
from cbp.roles import DeviceIdentity
from cbp.roles.messages import TELEMETRY_SUFFIX, sample_intervals
from devpki import Role
from privacy import ActivationWindow
from tests.kit.pki import Pki
from ven import VtnUnavailable

from .rolekit import Rig, SteadyLoad, db_cells, next_month_start, poll_through, send_device_rows

WHO = {"requested_by": "test", "reason": "erasure traces"}


def _raw(paths: list[Path]) -> bytes:
    """The bytes of each file and of its -wal/-journal companion, as they are on disk."""
    found = bytearray()
    for path in paths:
        for companion in (path, path.with_name(path.name + "-wal"),
                          path.with_name(path.name + "-journal")):
            if companion.is_file():
                found += companion.read_bytes()
    return bytes(found)


def _captures(rig: Rig) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(rig.captures.iterdir()))


async def _erase(rig: Rig, prosumer: str) -> privacy.PendingErasure:
    """Erase in the vault; the household's devices are switched off (their VENs stop polling:
    the aggregator refuses them once it unlinked them)."""
    gone = {e.ven_id for e in rig.aggregator.book.registered() if e.prosumer_id == prosumer}
    (pending,) = privacy.erase_prosumer(rig.vault, prosumer, privacy.PrivacyConfig(),
                                        requested_by="test", reason="erasure traces")
    for node in [n for n in rig.fleet.nodes if n.identity.fingerprint in gone]:
        rig.fleet.nodes.remove(node)
        await node.client.close()
    return pending


async def test_no_erased_pseudonym_or_certificate_is_left_in_any_file(
        rig: Rig, tmp_path: Path) -> None:
    agg, zone = rig.aggregator, rig.settings.rules.timezone
    target = agg.book.registered()[0]
    await send_device_rows(rig)
    erased = {target.pseudonym, target.gcp_pseudonym}
    rig.clock.now = next_month_start(rig.clock.now, zone)
    await agg.register_pool()
    await send_device_rows(rig)
    erased |= {target.pseudonym, target.gcp_pseudonym}
    tso_files = [tmp_path / "tso.db"]
    agg_files = [tmp_path / "aggregator.db", tmp_path / "aggregator-outbox.db"]
    before = _raw(tso_files) + _captures(rig)
    assert all(name.encode() in before for name in erased)
    assert target.ven_id.encode() in _raw(agg_files[:1])

    pending = await _erase(rig, target.prosumer_id)
    assert erased <= set(pending.notice.all_pseudonyms())
    await rig.step(rig.clock.now + rig.period)
    (acted,) = rig.tso.erasures.acted
    assert acted.notice_id == pending.notice.notice_id

    left = _raw(tso_files) + _captures(rig)
    assert [n for n in erased if n.encode() in left] == []
    assert _captures(rig), "the captures of the other devices' messages stay"
    agg_raw = _raw(agg_files)
    assert target.ven_id.encode() not in agg_raw
    assert [n for n in erased if n.encode() in agg_raw] == []
    vault_raw = _raw([rig.vault.path, rig.vault.keyring_path])
    assert [n for n in erased if n.encode() in vault_raw] == []
    survivor = agg.book.registered()[0]
    assert survivor.pseudonym.encode() in _raw(tso_files)  # the scan would see a name


async def test_rows_queued_while_the_tso_was_away_reach_it_before_the_notice(
        rig: Rig, tmp_path: Path) -> None:
    agg, tso = rig.aggregator, rig.tso
    upstream = agg.upstream
    assert upstream is not None
    target = agg.book.registered()[0]
    erased = {target.pseudonym, target.gcp_pseudonym}
    await rig.tso_down()
    at = rig.clock.now
    agg.windows.append(ActivationWindow(start=at - rig.period, end=at + rig.period))
    specifier = rig.settings.pool_id + TELEMETRY_SUFFIX
    rows = [(e.pseudonym, 0.5) for e in agg.book.registered()]  # shares of rated power
    await upstream.send_report(agg.requests[specifier], sample_intervals([(at, rows)], rig.period),
                               report_specifier_id=specifier)  # queued: the TSO is away
    pending = await _erase(rig, target.prosumer_id)

    await rig.step(rig.clock.now + rig.period)
    assert tso.erasures.acted == []
    assert [p.notice.notice_id for p in rig.vault.erasure.pending(**WHO)] == [
        pending.notice.notice_id], "an undelivered notice stays pending"

    await rig.tso_back()
    await poll_through(rig)
    await rig.run_until(rig.clock.now + 3 * rig.period)
    assert [a.notice_id for a in tso.erasures.acted] == [pending.notice.notice_id]
    assert rig.vault.erasure.pending(**WHO) == ()
    held = db_cells(tmp_path / "tso.db") + _raw([tmp_path / "tso.db"]) + _captures(rig)
    assert [n for n in erased if n.encode() in held] == []
    survivor = agg.book.registered()[0]
    assert survivor.pseudonym.encode() in db_cells(tmp_path / "tso.db"), "the queued rows arrived"


async def test_a_household_with_two_devices_behind_one_connection_point_goes_whole(
        rig: Rig, tmp_path: Path, pki: Pki) -> None:
    agg, tso, vault = rig.aggregator, rig.tso, rig.vault
    first = agg.book.registered()[0]
    issued = pki.authority.issue("device-second", Role.VEN)
    cert, key = issued.write(tmp_path / "devices")
    sim = SteadyLoad()
    vault.devices.onboard(prosumer_id=first.prosumer_id, serial="SN-SECOND",
                          device_class=sim.device_class.value,
                          rated_kw=Decimal(str(sim.rated_kw)), zone="NL", device_uuid=sim.device_id)
    agg.onboard(ven_id=issued.fingerprint, device_uuid=sim.device_id,
                prosumer_id=first.prosumer_id, device_class=sim.device_class.value,
                power_bucket=sim.power_bucket, rated_kw=Decimal(str(sim.rated_kw)))
    node = rig.fleet.add(DeviceIdentity(name=issued.name, cert=cert, key=key,
                                        fingerprint=issued.fingerprint), sim)
    await node.client.start()
    await node.client.register()
    assert await agg.register_pool() == 7
    household = [e for e in agg.book.registered() if e.prosumer_id == first.prosumer_id]
    assert len(household) == 2 and household[0].gcp_pseudonym == household[1].gcp_pseudonym
    await send_device_rows(rig)
    erased = {e.pseudonym for e in household} | {household[0].gcp_pseudonym}
    neighbours = {e.gcp_pseudonym for e in agg.book.registered()} - erased
    assert all(n.encode() in db_cells(tmp_path / "tso.db") for n in erased)

    pending = await _erase(rig, first.prosumer_id)
    assert len(pending.devices) == 2 and erased <= set(pending.notice.all_pseudonyms())
    await rig.step(rig.clock.now + rig.period)

    assert [a.notice_id for a in tso.erasures.acted] == [pending.notice.notice_id]
    held = db_cells(tmp_path / "tso.db") + _raw([tmp_path / "tso.db"]) + _captures(rig)
    assert [n for n in erased if n.encode() in held] == []
    registry = {d.pseudonym for pools in tso.pools.values() for ds in pools.values() for d in ds}
    assert len(registry) == 5 and not registry & erased
    assert set(tso.gcp_owner) == neighbours, "the neighbours' connection points stay"
    assert {e.prosumer_id for e in agg.book.registered()}.isdisjoint({first.prosumer_id})


async def test_the_aggregator_unlinks_at_once_while_the_tso_is_away(
        rig: Rig, tmp_path: Path) -> None:
    """Its own stores must not keep the erased device until the TSO is back; and a notice
    waiting for the TSO is not read (an audited access) at every tick."""
    agg, vault = rig.aggregator, rig.vault
    target = agg.book.registered()[0]
    agg_db = tmp_path / "aggregator.db"
    await rig.tso_down()
    upstream = agg.upstream
    assert upstream is not None
    with pytest.raises(VtnUnavailable):
        await upstream.poll_once()
    agg.link.failure()  # what the poll loop's error hook does with that
    await rig.run_until(rig.clock.now + rig.settings.timing.link_timeout + 2 * rig.period)
    assert agg.link.down(rig.clock.now)
    assert target.ven_id.encode() in _raw([agg_db])
    pending = await _erase(rig, target.prosumer_id)

    await rig.step(rig.clock.now + rig.period)
    assert target.device_uuid not in agg.book.by_uuid
    assert target.ven_id.encode() not in _raw([agg_db]), "unlinked and scrubbed while away"
    entries = len(vault.audit.entries())
    await rig.run_until(rig.clock.now + 5 * rig.period)
    assert len(vault.audit.entries()) == entries, "the waiting notice is read once, not per tick"
    assert rig.tso.erasures.acted == []

    await rig.tso_back()
    await poll_through(rig)
    await rig.run_until(rig.clock.now + 3 * rig.period)
    assert [a.notice_id for a in rig.tso.erasures.acted] == [pending.notice.notice_id]
    assert vault.erasure.pending(**WHO) == ()
