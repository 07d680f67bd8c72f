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
from privacy.auditlog import AuditLog
from tests.kit.vaults import WHO, Household, add_household

TSO = "TSO:TENNET-NL"
PURPOSE = "balancing-validation"
_IDENTITY_TYPES = ("Device", "Prosumer", "IdentityValue", "UUID", "PendingErasure",
                   "Holdings")


def _identity_paths(vault: IdentityVault, household: Household
                    ) -> dict[str, tuple[str, Callable[..., Any]]]:
    """Audit action -> (the method, a call of it with who and why to come)."""
    device, prosumer = household.device.device_uuid, household.prosumer.prosumer_id
    name = vault.pseudonyms.of(device, TSO, PURPOSE, "2025-03", **WHO)
    scopes = privacy.PrivacyConfig().scopes()
    return {
        "resolve": ("Pseudonyms.resolve",
                    lambda **w: vault.pseudonyms.resolve(name, TSO, PURPOSE, "2025-03", **w)),
        "pseudonym_of": ("Pseudonyms.of",
                         lambda **w: vault.pseudonyms.of(device, TSO, PURPOSE, "2025-03", **w)),
        "device": ("Devices.get", lambda **w: vault.devices.get(device, **w)),
        "devices": ("Devices.of", lambda **w: vault.devices.of(prosumer, **w)),
        "prosumer": ("Prosumers.get", lambda **w: vault.prosumers.get(prosumer, **w)),
        "identity_values": ("IdentityVault.identity_values",
                            lambda **w: vault.identity_values(**w)),
        "pending_erasures": ("Erasure.pending", lambda **w: vault.erasure.pending(**w)),
        "issued_pseudonyms": ("Pseudonyms.issued",
                              lambda **w: vault.pseudonyms.issued(prosumer, scopes=scopes, **w)),
    }


def _public_classes(root: object) -> set[type]:
    """The class of ``root`` and of every privacy object reachable from it through public
    attributes (``vault.devices``, ``vault.erasure``...)."""
    found: set[type] = set()
    todo = [root]
    while todo:
        item = todo.pop()
        if type(item) in found:
            continue
        found.add(type(item))
        todo += [value for name in dir(item) if not name.startswith("_")
                 if type(value := getattr(item, name)).__module__.startswith("privacy.")]
    return found


def test_the_enumerated_paths_are_every_public_way_to_identity(
    vault: IdentityVault, household: Household
) -> None:
    """Any public method returning an identity type (or a pseudonym) must ask who and why, on
    the vault and on every privacy object reachable through its public attributes."""
    paths = {method for method, _ in _identity_paths(vault, household).values()}
    reaching = set()
    # writes: they return what the caller gave, or (erasure) are audited by test_erasure
    writes = {"Devices.onboard", "Prosumers.add", "Consents.grant", "Erasure.erase"}
    # checks: they return a subset of the device ids the caller gave (test_vault's
    # test_consenting_lets_through_what_require_would), as require answers for one
    checks = {"Consents.consenting"}
    for cls in _public_classes(vault):
        for name, method in inspect.getmembers(cls, inspect.isfunction):
            qualified = f"{cls.__name__}.{name}"
            if name.startswith("_") or qualified in writes | checks:
                continue
            signature = inspect.signature(method)
            returns = str(signature.return_annotation)
            if any(t in returns for t in _IDENTITY_TYPES) or qualified == "Pseudonyms.of":
                reaching.add(qualified)
                assert {"requested_by", "reason"} <= set(signature.parameters), qualified
    assert reaching == paths


def test_no_public_attribute_of_the_vault_can_write_the_log(vault: IdentityVault) -> None:
    """``vault.audit`` reads and verifies; the writer is reachable only through private
    attributes, so no caller holding the vault can append, forge or bypass an entry."""
    assert AuditLog not in _public_classes(vault)
    public = {name for name in dir(vault.audit) if not name.startswith("_")}
    assert public == {"entries", "verify"}
    for cls in _public_classes(vault):
        assert not {"write", "record"} & set(dir(cls)), cls.__name__


def test_every_identity_path_writes_one_entry_with_who_why_and_no_identifier(
    vault: IdentityVault, household: Household
) -> None:
    add_household(vault, 2)
    privacy.erase_prosumer(vault, add_household(vault, 3).prosumer.prosumer_id,
                           privacy.PrivacyConfig(), **WHO)  # a notice pending to read
    before = len(vault.audit.entries())
    paths = _identity_paths(vault, household)
    before = len(vault.audit.entries())
    for action, (_, call) in paths.items():
        call(requested_by="disputes desk", reason=f"case 17 via {action}")
        entry = vault.audit.entries()[-1]
        assert (entry.action, entry.requested_by, entry.reason) == (
            action, "disputes desk", f"case 17 via {action}")
        with pytest.raises(ValueError, match="why"):
            call(requested_by="disputes desk", reason=" ")
    assert len(vault.audit.entries()) == before + len(paths)
    log_text = "".join(str(row) for row in sqlite3.connect(vault.path).execute(
        "SELECT * FROM audit_log"))
    name = vault.pseudonyms.of(household.device.device_uuid, TSO, PURPOSE, "2025-03", **WHO)
    for clear in (str(household.device.device_uuid), household.prosumer.prosumer_id, name,
                  household.prosumer.ean, household.device.serial):
        assert clear not in log_text
    assert vault.audit.verify().intact


def test_entries_cut_off_the_end_show_only_against_a_kept_head(
    vault: IdentityVault, household: Household
) -> None:
    for n in range(3):
        vault.devices.get(household.device.device_uuid, requested_by="desk", reason=f"case {n}")
    kept = vault.audit.verify()
    db = sqlite3.connect(vault.path)
    with db:
        db.execute("DELETE FROM audit_log WHERE entry = 3")
    db.close()
    after = vault.audit.verify()
    assert after.intact  # the shorter chain still checks...
    assert (after.entries, after.head) != (kept.entries, kept.head)  # ...but not as the copy
