"""Where personal data rests in a deployment, and how long each store keeps it.

:func:`retention_schedule` is the one list of stores: the DPIA prints it, and the
running nodes take the ages they purge at from it (``cbp.roles.retention``), so the DPIA and
the nodes cannot disagree. A store with an ``age`` is purged by its node automatically; a store
without one says in ``kept`` what ends its data (an erasure, a delivery, the operator).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from .config import PrivacyConfig

__all__ = ["Holder", "Store", "StoreRetention", "retention_schedule"]


class Holder(StrEnum):
    AGGREGATOR = "aggregator"
    TSO = "TSO"


class Store(StrEnum):
    VAULT = "identity vault"
    KEYRING = "vault keyring"
    DEVICE_LIST = "device list"
    ONBOARDING_CSV = "onboarding CSV"
    RAW_TELEMETRY = "raw device telemetry"
    DEVICE_EVENTS = "device events"
    OUTBOX = "outbox to the TSO"
    NODE_MEMORY = "aggregator node memory"
    LOGS = "node logs"
    TSO_DEVICE_ROWS = "per-device rows"
    TSO_REGISTRATION = "pool registration"
    TSO_POOL_ROWS = "pool rows"
    CAPTURES = "captured messages"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreRetention:
    store: Store
    holder: Holder
    where: str
    holds: str
    kept: str
    age: timedelta | None = None  # purged automatically by the holder's node at this age


def _days(age: timedelta) -> str:
    return f"{age.days} days, then deleted automatically (checked at start and every hour)"


def retention_schedule(config: PrivacyConfig) -> tuple[StoreRetention, ...]:
    a, t = Holder.AGGREGATOR, Holder.TSO
    return (
        StoreRetention(
            store=Store.VAULT, holder=a, where="[vault] path (SQLite, encrypted fields)",
            holds="names, postcodes, EANs, contracts, serials, device_uuids, salts, consent "
            "history, the re-identification audit log",
            kept="while the contract runs; `crowdflex privacy erase` removes a prosumer"),
        StoreRetention(
            store=Store.KEYRING, holder=a,
            where="[vault] keyring (default: the vault's path + .keyring; SQLite)",
            holds="one data key per prosumer, wrapped under the master key: key material, "
            "no identity",
            kept="while the prosumer is in the vault; erasure deletes the prosumer's key. Keep "
            "it with the master keys, never in data backups: a copy of the vault and the "
            "keyring from before an erasure, with the master key, gives the erased household "
            "back"),
        StoreRetention(
            store=Store.DEVICE_LIST, holder=a, where="[devices] csv",
            holds="device certificate fingerprint, device_uuid, prosumer_id, device class, "
            "power bucket, rated power",
            kept="while the device is onboarded"),
        StoreRetention(
            store=Store.ONBOARDING_CSV, holder=a, where="the file given to --onboard",
            holds="every identity field of the devices onboarded from it",
            kept="read once; crowdflex never deletes it: the operator deletes it after "
            "onboarding"),
        StoreRetention(
            store=Store.RAW_TELEMETRY, holder=a,
            where="the aggregator VTN's database ([vtn] storage_url), report points",
            holds="4-s power samples per device certificate",
            kept=_days(config.raw_retention), age=config.raw_retention),
        StoreRetention(
            store=Store.DEVICE_EVENTS, holder=a,
            where="the aggregator VTN's database ([vtn] storage_url), events and messages",
            holds="setpoints sent to each device, its acknowledgements, delivered messages",
            kept=_days(config.raw_retention) + " after the event ended or the message was "
            "delivered", age=config.raw_retention),
        StoreRetention(
            store=Store.OUTBOX, holder=a, where="[tso] outbox (SQLite)",
            holds="reports to the TSO not yet acknowledged (pseudonymous rows)",
            kept="until the TSO acknowledges them"),
        StoreRetention(
            store=Store.NODE_MEMORY, holder=a, where="the running aggregator process",
            holds="which devices (device_uuid) each activation dispatched; delivered kWh and "
            "payout per prosumer_id and month",
            kept="until the node stops: no age applies, and an erasure does not remove a "
            "household's payout totals"),
        StoreRetention(
            store=Store.LOGS, holder=a, where="standard error, kept by the operator's logging",
            holds="certificate fingerprints of devices, device_uuids (a refused device "
            "registration), pseudonyms in warnings",
            kept="as long as the operator's log rotation keeps them"),
        StoreRetention(
            store=Store.TSO_DEVICE_ROWS, holder=t,
            where="the TSO VTN's database, report points whose rID is a pseudonym",
            holds="per-device metering inside activation windows, under monthly pseudonyms",
            kept=_days(config.tso_device_retention) + "; an erasure notice deletes a "
            "household's rows at once", age=config.tso_device_retention),
        StoreRetention(
            store=Store.TSO_REGISTRATION, holder=t,
            where="the TSO VTN's database, report registrations and requests, and its registry",
            holds="per device: pseudonym, device class, power bucket, zone, GCP pseudonym",
            kept="until the aggregator registers its pool again (the new registration replaces "
            "it) or an erasure notice names them"),
        StoreRetention(
            store=Store.TSO_POOL_ROWS, holder=t,
            where="the TSO VTN's database, report points of pool rIDs",
            holds="pool totals, baselines and offers: no device, no household",
            kept="without limit (settlement records; not personal data)"),
        StoreRetention(
            store=Store.CAPTURES, holder=t, where="capture_dir of the TSO's TOML",
            holds="every aggregator->TSO message as sent (per-device rows included)",
            kept=_days(config.capture_retention) + "; an erasure notice deletes every capture "
            "naming one of its pseudonyms at once", age=config.capture_retention),
    )
