"""Re-identification is always audited: every identity path writes a chained entry with who, why
and what (no clear identifiers); the verifier names the first broken entry."""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

import privacy
from privacy import IdentityVault
from tests.kit.vaults import WHO, Household, add_household

TSO = "TSO:TENNET-NL"
PURPOSE = "balancing-validation"
_IDENTITY_TYPES = ("Device", "Prosumer", "IdentityValue", "UUID", "PendingErasure",
                   "Holdings")


def _identity_paths(vault: IdentityVault, household: Household) -> dict[str, Callable[..., Any]]:
    device, prosumer = household.device.device_uuid, household.prosumer.prosumer_id
    name = vault.pseudonym_of(device, TSO, PURPOSE, "2025-03", **WHO)
    return {
        "resolve": lambda **w: vault.resolve(name, TSO, PURPOSE, "2025-03", **w),
        "pseudonym_of": lambda **w: vault.pseudonym_of(device, TSO, PURPOSE, "2025-03", **w),
        "device": lambda **w: vault.device(device, **w),
        "devices": lambda **w: vault.devices(prosumer, **w),
        "prosumer": lambda **w: vault.prosumer(prosumer, **w),
        "identity_values": lambda **w: vault.identity_values(**w),
        "pending_erasures": lambda **w: vault.pending_erasures(**w),
        "issued_pseudonyms": lambda **w: vault.issued_pseudonyms(
            prosumer, scopes=privacy.PrivacyConfig().scopes(), **w),
    }


def test_the_enumerated_paths_are_every_public_way_to_identity(
    vault: IdentityVault, household: Household
) -> None:
    """Any public method returning an identity type (or a pseudonym) must ask who and why."""
    paths = set(_identity_paths(vault, household))
    reaching = set()
    # writes: they return what the caller gave, or (erasure) are audited by test_erasure
    writes = {"onboard_device", "add_prosumer", "grant_consent", "erase_prosumer"}
    for name, method in inspect.getmembers(IdentityVault, inspect.isfunction):
        if name.startswith("_") or name in writes:
            continue
        signature = inspect.signature(method)
        returns = str(signature.return_annotation)
        if any(t in returns for t in _IDENTITY_TYPES) or name == "pseudonym_of":
            reaching.add(name)
            assert {"requested_by", "reason"} <= set(signature.parameters), name
    assert reaching == paths


def test_every_identity_path_writes_one_entry_with_who_why_and_no_identifier(
    vault: IdentityVault, household: Household
) -> None:
    add_household(vault, 2)
    privacy.erase_prosumer(vault, add_household(vault, 3).prosumer.prosumer_id,
                           privacy.PrivacyConfig(), **WHO)  # a notice pending to read
    before = len(vault.audit_log())
    paths = _identity_paths(vault, household)
    before = len(vault.audit_log())
    for action, call in paths.items():
        call(requested_by="disputes desk", reason=f"case 17 via {action}")
        entry = vault.audit_log()[-1]
        assert (entry.action, entry.requested_by, entry.reason) == (
            action, "disputes desk", f"case 17 via {action}")
        with pytest.raises(ValueError, match="why"):
            call(requested_by="disputes desk", reason=" ")
    assert len(vault.audit_log()) == before + len(paths)
    log_text = "".join(str(row) for row in sqlite3.connect(vault.path).execute(
        "SELECT * FROM audit_log"))
    name = vault.pseudonym_of(household.device.device_uuid, TSO, PURPOSE, "2025-03", **WHO)
    for clear in (str(household.device.device_uuid), household.prosumer.prosumer_id, name,
                  household.prosumer.ean, household.device.serial):
        assert clear not in log_text
    assert vault.verify_audit_log().intact


def test_entries_cut_off_the_end_show_only_against_a_kept_head(
    vault: IdentityVault, household: Household
) -> None:
    for n in range(3):
        vault.device(household.device.device_uuid, requested_by="desk", reason=f"case {n}")
    kept = vault.verify_audit_log()
    db = sqlite3.connect(vault.path)
    with db:
        db.execute("DELETE FROM audit_log WHERE entry = 3")
    db.close()
    after = vault.verify_audit_log()
    assert after.intact  # the shorter chain still checks...
    assert (after.entries, after.head) != (kept.entries, kept.head)  # ...but not as the copy
