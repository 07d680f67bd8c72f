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

:func:`write_sample_onboarding` writes such a file for a simulated fleet (``crowdflex certs
fleet --csv``): made-up prosumers, every one consenting, each device's class and rating those of
the simulator ``crowdflex device`` runs for it with the same seed.

Invariants: a device whose owner has not consented gets no vault record and no devices-file row;
importing the same file again changes nothing (known venIDs are skipped, known prosumers kept).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from cbp.devices import DeviceClass, build_pool, power_bucket
from privacy import ONBOARDING_PURPOSE, VALIDATION_PURPOSE, ConsentMissing, IdentityVault

__all__ = ["DEVICE_COLUMNS", "ONBOARDING_COLUMNS", "Onboarded", "import_onboarding",
           "read_devices", "remove_devices", "write_sample_onboarding"]

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


def remove_devices(path: Path, ven_ids: Iterable[str]) -> int:
    """Rewrite the devices file without the rows of ``ven_ids`` (their owner was erased);
    atomically (a new file renamed over the old). Returns how many rows went."""
    gone = set(ven_ids)
    rows = read_devices(path)
    kept = [row for row in rows if row["ven_id"] not in gone]
    fresh = path.with_name(path.name + ".new")
    with fresh.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=DEVICE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    fresh.replace(path)
    return len(rows) - len(kept)


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
    prosumers = set(vault.prosumers.ids())
    added: list[dict[str, str]] = []
    skipped = refused = 0
    for line, row in _read_onboarding(source):
        bucket, rated = _check(row, line)
        if row["ven_id"] in known:
            skipped += 1
            continue
        prosumer = row["prosumer_id"]
        if prosumer not in prosumers:
            vault.prosumers.add(prosumer_id=prosumer, name=row["name"], postcode=row["postcode"],
                                ean=row["ean"], contract_id=row["contract_id"])
            prosumers.add(prosumer)
        if row["consent"] == "yes":  # the service and the per-device validation it needs
            vault.consents.grant(prosumer, ONBOARDING_PURPOSE)
            vault.consents.grant(prosumer, VALIDATION_PURPOSE)
        try:
            device = vault.devices.onboard(prosumer_id=prosumer, serial=row["serial"],
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


def write_sample_onboarding(path: Path, fingerprints: Sequence[str], *, seed: int) -> None:
    """Onboarding records for a simulated fleet, one per device certificate fingerprint in fleet
    order; identities are made up (from ``seed``), every owner consents."""
    rng = random.Random(seed)
    sims = build_pool(len(fingerprints), seed).devices
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(ONBOARDING_COLUMNS)
        for i, (fingerprint, sim) in enumerate(zip(fingerprints, sims, strict=True)):
            postcode = f"{rng.randint(1000, 9999)} {rng.choice('ABCDEFGHJK')}" \
                       f"{rng.choice('LMNPRTVWXZ')}"
            ean = "871" + "".join(str(rng.randint(0, 9)) for _ in range(15))
            writer.writerow((fingerprint, f"P{i:05d}", f"Prosumer {i}", postcode, ean,
                             f"C-{i:05d}", f"SN-{rng.getrandbits(40):010X}",
                             sim.device_class.value, sim.rated_kw, "yes"))
