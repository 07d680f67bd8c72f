"""Vault keys: separate domains, per-prosumer data keys, rotation by epoch, authenticated rows,
and the refusal of first-format files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

import privacy
from cbp.cli import main
from privacy import IdentityVault
from tests.kit.clock import Clock
from tests.kit.vaults import WHO, add_household, key_provider

PURPOSE = "balancing-validation"
TSO = "TSO:TENNET-NL"
V1 = bytes(range(32))


def test_rotation_rewraps_and_switches_pseudonyms_only_at_the_next_month(tmp_path: Path) -> None:
    clock = Clock(datetime(2025, 3, 14, 12, 0, tzinfo=UTC))
    path = tmp_path / "vault.sqlite"
    with IdentityVault(path, key_provider(V1), clock=clock) as before:
        household = add_household(before, 1)
        device = household.device.device_uuid
        march = before.pseudonyms.of(device, TSO, PURPOSE, "2025-03", **WHO)
        april_old_key = before.pseudonyms.of(device, TSO, PURPOSE, "2025-04", **WHO)
    key_file = tmp_path / "keys"
    key_file.write_text(f"1:{V1.hex()}\n")
    assert main(["privacy", "keygen", "--key-file", str(key_file)]) == 0
    v2 = bytes.fromhex(key_file.read_text().splitlines()[1].split(":")[1])
    with IdentityVault(path, key_provider(V1, v2), clock=clock) as rotated:
        assert rotated.pseudonyms.of(device, TSO, PURPOSE, "2025-03", **WHO) == march
    assert main(["privacy", "rotate", "--vault", str(path), "--key-file", str(key_file),
                 "--reason", "yearly rotation"]) == 0
    with IdentityVault(path, key_provider(V1, v2), clock=clock) as rotated:
        assert rotated.audit.entries()[-1].reason == "yearly rotation"
        assert rotated.pseudonyms.of(device, TSO, PURPOSE, "2025-03", **WHO) == march
        april = rotated.pseudonyms.of(device, TSO, PURPOSE, "2025-04", **WHO)
        assert april != april_old_key
    ring = sqlite3.connect(path.with_name(path.name + ".keyring"))
    assert ring.execute("SELECT DISTINCT key_version FROM data_keys").fetchall() == [(2,)]
    ring.close()
    only_new = privacy.EnvKeyProvider(environ={privacy.DEFAULT_KEY_ENV: f"2:{v2.hex()}"})
    with IdentityVault(path, only_new, clock=clock) as retired:
        assert retired.devices.get(device, **WHO) == household.device  # re-wrapped: v1 not needed
        assert retired.consents.of("P-0001")  # re-authenticated under v2
        assert retired.audit.verify().first_broken == 1  # old entries name v1: kept as is
        assert retired.pseudonyms.of(device, TSO, PURPOSE, "2025-04", **WHO) == april
        with pytest.raises(privacy.KeyUnavailable):
            retired.pseudonyms.of(device, TSO, PURPOSE, "2025-03", **WHO)  # March is v1's
