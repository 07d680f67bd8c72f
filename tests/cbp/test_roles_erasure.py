"""Erasure end to end over mutual TLS: the TSO receives the x-ERASURE notice, deletes every row of
the erased prosumer's pseudonyms (both months it saw), the aggregator records the TSO's
acknowledgement and unlinks its own stores, a copy of the vault taken before the erasure cannot
recover the salt, and every pseudonym left at the TSO is explained by a remaining device.

Everything is real (tests.cbp.rolekit): a TSO node and an aggregator node served on loopback over
mutual TLS, SQLite files, the aggregator's outbound filter on every byte. Two months of TSO-side
data come from the real link: the pool registered in one month, per-device rows sent inside an
activation window, the clock moved to the next month, the pool registered again (new
pseudonyms) and rows sent again.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

import privacy
import schemas
from cbp.cli import main
from cbp.cli._onboard import DEVICE_COLUMNS, read_devices, remove_devices
from cbp.roles.erasure import erasure_metadata, erasure_report, notice_pseudonyms
from privacy import ErasureNotice, FileKeyProvider, IdentityVault, month_of
from schemas import InvalidData, RegisterReport, UpdateReport

from ..schemas.xsd_oracle import assert_xsd_valid
from .rolekit import Rig, db_cells, next_month_start, send_device_rows

_PSEUDONYM = re.compile(rb"psn1_[a-z2-7]{26}")
WHO = {"requested_by": "test", "reason": "erasure acceptance"}


def test_the_carrier_is_valid_openadr_2_0b_and_names_pseudonyms_only() -> None:
    created = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    names = ("psn1_" + "a" * 26, "psn1_" + "b" * 26)
    notice = ErasureNotice(notice_id=str(uuid4()), recipient="TSO:TENNET-NL", issued_at=created,
                           months=("2025-03",), pseudonyms=(("balancing-validation", names),))
    register = RegisterReport(request_id="r1", ven_id="AGG", reports=(
        erasure_metadata("POOL", created=created),))
    report = erasure_report(notice, report_request_id="rr-1", pool_id="POOL", created=created)
    update = UpdateReport(request_id="r2", ven_id="AGG", reports=(report,))
    for message in (register, update):
        assert_xsd_valid(schemas.encode(message))
    assert notice_pseudonyms(report) == frozenset(names)
    with pytest.raises(InvalidData):
        notice_pseudonyms(erasure_report(
            replace(notice, pseudonyms=(("x", ("P00001",)),)), report_request_id="rr-1",
            pool_id="POOL", created=created))


async def test_erasure_reaches_the_tso_and_leaves_nothing_unexplained(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agg, tso, vault, settings = rig.aggregator, rig.tso, rig.vault, rig.settings
    zone = settings.rules.timezone
    target = agg.book.registered()[0]
    fingerprint, prosumer = target.ven_id, target.prosumer_id
    first_month = month_of(rig.clock.now, zone)
    await send_device_rows(rig)
    seen = {(target.pseudonym, target.gcp_pseudonym)}
    rig.clock.now = next_month_start(rig.clock.now, zone)
    assert await agg.register_pool() == 6  # a new month: every pseudonym changes
    second_month = month_of(rig.clock.now, zone)
    await send_device_rows(rig)
    seen.add((target.pseudonym, target.gcp_pseudonym))
    erased = {name for pair in seen for name in pair}
    assert len(erased) == 4 and first_month != second_month
    tso_db, agg_db = tmp_path / "tso.db", tmp_path / "aggregator.db"
    held = {name for name in erased if name.encode() in db_cells(tso_db)}
    assert {device for device, _ in seen} | {target.gcp_pseudonym} <= held  # both months' rows
    assert fingerprint.encode() in db_cells(agg_db)
    backup = tmp_path / "vault-backup.db"
    shutil.copyfile(vault.path, backup)

    devices_file = tmp_path / "devices.csv"
    devices_file.write_text(",".join(DEVICE_COLUMNS) + "\n" + "".join(
        f"{e.ven_id},{e.device_uuid},{e.prosumer_id},{e.device_class},{e.power_bucket},"
        f"{e.rated_kw}\n" for e in agg.book.registered()))
    agg.erasures.on_unlinked = lambda ven_ids: remove_devices(devices_file, ven_ids)
    key_file = tmp_path / "vault.key"
    # a second recipient, which this aggregator has no link to (README: its notice stays pending)
    config = tmp_path / "recipients.toml"
    config.write_text(
        "[privacy]\n"
        f'[[privacy.recipients]]\nname = "{settings.tso_recipient}"\n'
        'purposes = ["balancing-validation", "gcp"]\n'
        '[[privacy.recipients]]\nname = "DSO:STEDIN"\npurposes = ["congestion"]\n'
        '[privacy.legal_basis]\ncongestion = "Art. 6(1)(e) GDPR"\n')
    assert main(["privacy", "erase", "--vault", str(vault.path), "--key-file", str(key_file),
                 "--prosumer", prosumer, "--reason", "request R-42", "--config", str(config)]
                ) == 0  # another process' way
    pending, unlinked = sorted(vault.erasure.pending(**WHO),
                               key=lambda p: p.notice.recipient != settings.tso_recipient)
    assert unlinked.notice.recipient == "DSO:STEDIN"
    assert erased <= set(pending.notice.all_pseudonyms())
    assert tso.erasures.acted == []  # nothing delivered yet: the running node does that

    await rig.step(rig.clock.now + rig.period)

    # the TSO acted on the notice, and the aggregator recorded its acknowledgement
    (acted,) = tso.erasures.acted
    assert acted.notice_id == pending.notice.notice_id and acted.rows >= 2
    assert vault.erasure.pending(**WHO) == (unlinked,)  # no link to the DSO: still pending
    (record,) = [r for r in vault.erasure.notices() if r.notice_id == pending.notice.notice_id]
    assert record.acknowledged_at == rig.clock.now
    capsys.readouterr()
    assert main(["privacy", "erasures", "--vault", str(vault.path), "--key-file", str(key_file)]
                ) == 0
    listed = capsys.readouterr().out
    assert f"{record.notice_id} {settings.tso_recipient}" in listed
    assert f"acknowledged {rig.clock.now.isoformat()}" in listed
    (waiting,) = [line for line in listed.splitlines() if "pending" in line]
    assert "DSO:STEDIN" in waiting
    # no row of any of the prosumer's pseudonyms (either month) remains at the TSO
    tso_cells = db_cells(tso_db)
    assert not [name for name in erased if name.encode() in tso_cells]
    registry = {d.pseudonym for pools in tso.pools.values() for ds in pools.values() for d in ds}
    assert len(registry) == 5 and not registry & erased and not erased & set(tso.gcp_owner)
    # no aggregator store links to the device any more
    assert fingerprint.encode() not in db_cells(agg_db)
    assert target.device_uuid not in agg.book.by_uuid and fingerprint not in agg.book.by_ven
    assert str(target.device_uuid).encode() not in db_cells(agg_db)
    assert fingerprint not in devices_file.read_text() and len(read_devices(devices_file)) == 5
    # a copy of the vault taken before the erasure cannot give the salt back
    with (IdentityVault(backup, FileKeyProvider(key_file), keyring=vault.keyring_path) as old,
          pytest.raises(privacy.UnknownIdentity, match="no data key")):
        old.devices.get(target.device_uuid, **WHO)
    # every pseudonym the TSO still holds is explained by a device still in the vault
    left = {m.decode() for m in _PSEUDONYM.findall(tso_cells)}
    explained = {vault.pseudonyms.of(d.device_uuid, settings.tso_recipient, purpose, month, **WHO)
                 for d in vault.devices.of(**WHO)
                 for purpose in (settings.msp_purpose, privacy.GCP_PURPOSE)
                 for month in (first_month, second_month)}
    assert left and left <= explained
