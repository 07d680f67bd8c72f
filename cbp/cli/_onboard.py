"""Device onboarding for `crowdflex aggregator --onboard FILE`: the back office's records into the
identity vault, and each device's certificate mapping into the aggregator's devices file.

The onboarding file is CSV with a header: ``ven_id`` (the device certificate's fingerprint, as
``crowdflex certs`` prints it), ``prosumer_id``, ``name``, ``postcode``, ``ean``,
``contract_id``, ``serial``, ``device_class``, ``rated_kw`` and ``consent`` (``yes`` or ``no``:
whether the prosumer consented to the flexibility service and the per-device validation it
needs; both consents are recorded). Identity fields go only into the vault (encrypted at rest);
the devices file (``[devices] csv``) gets ``ven_id, device_uuid, prosumer_id, device_class,
power_bucket, rated_kw`` -- nothing that identifies a person (the rated power never leaves the
aggregator: per-device values to the TSO are shares of it). Delete the onboarding file once
imported.

Invariants: a device whose owner has not consented gets no vault record and no devices-file row;
importing the same file again changes nothing (known venIDs are skipped, known prosumers kept).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from cbp.devices import DeviceClass, power_bucket
from privacy import ONBOARDING_PURPOSE, VALIDATION_PURPOSE, ConsentMissing, IdentityVault

__all__ = ["DEVICE_COLUMNS", "ONBOARDING_COLUMNS", "Onboarded", "import_onboarding",
           "read_devices"]

ONBOARDING_COLUMNS: Final = ("ven_id", "prosumer_id", "name", "postcode", "ean", "contract_id",
                             "serial", "device_class", "rated_kw", "consent")
DEVICE_COLUMNS: Final = ("ven_id", "device_uuid", "prosumer_id", "device_class", "power_bucket",
                          "rated_kw")


@dataclass(frozen=True, slots=True, kw_only=True)
class Onboarded:
    added: int
    known: int
    without_consent: int


def read_devices(path: Path) -> list[dict[str, str]]:
    """The devices file's rows (an absent file has none)."""
    if not path.is_file():
        return []
    with path.open(newline="") as rows:
        reader = csv.DictReader(rows)
        missing = set(DEVICE_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return list(reader)


def _check(row: Mapping[str, str], line: int) -> tuple[str, Decimal]:
    if row["device_class"] not in {c.value for c in DeviceClass}:
        raise ValueError(f"line {line}: unknown device_class {row['device_class']!r}")
    if row["consent"] not in ("yes", "no"):
        raise ValueError(f"line {line}: consent must be yes or no")
    try:
        rated = Decimal(row["rated_kw"])
    except InvalidOperation:
        raise ValueError(f"line {line}: rated_kw must be a number") from None
    return power_bucket(float(rated)), rated


def _read_onboarding(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    with path.open(newline="") as rows:
        reader = csv.DictReader(rows)
        missing = set(ONBOARDING_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        yield from enumerate(reader, start=2)


def import_onboarding(source: Path, vault: IdentityVault, devices: Path, *, zone: str
                      ) -> Onboarded:
    """Import ``source`` into ``vault`` and append the new devices to ``devices``."""
    known = {row["ven_id"] for row in read_devices(devices)}
    prosumers = set(vault.prosumer_ids())
    added: list[dict[str, str]] = []
    skipped = refused = 0
    for line, row in _read_onboarding(source):
        bucket, rated = _check(row, line)
        if row["ven_id"] in known:
            skipped += 1
            continue
        prosumer = row["prosumer_id"]
        if prosumer not in prosumers:
            vault.add_prosumer(prosumer_id=prosumer, name=row["name"], postcode=row["postcode"],
                               ean=row["ean"], contract_id=row["contract_id"])
            prosumers.add(prosumer)
        if row["consent"] == "yes":  # the service and the per-device validation it needs
            vault.grant_consent(prosumer, ONBOARDING_PURPOSE)
            vault.grant_consent(prosumer, VALIDATION_PURPOSE)
        try:
            device = vault.onboard_device(prosumer_id=prosumer, serial=row["serial"],
                                          device_class=row["device_class"], rated_kw=rated,
                                          zone=zone)
        except ConsentMissing:
            refused += 1
            continue
        known.add(row["ven_id"])
        added.append({"ven_id": row["ven_id"], "device_uuid": str(device.device_uuid),
                      "prosumer_id": prosumer, "device_class": row["device_class"],
                      "power_bucket": bucket, "rated_kw": str(rated)})
    fresh = not devices.is_file()
    with devices.open("a", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=DEVICE_COLUMNS)
        if fresh:
            writer.writeheader()
        writer.writerows(added)
    return Onboarded(added=len(added), known=skipped, without_consent=refused)
