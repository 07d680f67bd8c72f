"""The content of the DPIA (what ``crowdflex privacy dpia`` writes): sections built from the
settings that run.

Each sentence here either interpolates a setting the nodes read (:class:`PrivacyConfig`,
:class:`MeteringScope`) or states what the code does; ``tests/privacy/test_dpia_claims.py``
holds each such statement against the running code, so a statement that stops being true fails
a test. Where crowdflex relies on an arrangement it cannot enforce (a contract, an operator's
duty), the text says so instead of claiming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from .config import VALIDATION_PURPOSE, PrivacyConfig
from .devices import ONBOARDING_PURPOSE
from .pseudonyms import GCP_PURPOSE
from .stores import retention_schedule

__all__ = ["MeteringScope", "Section", "Table", "data_flows", "dpia_sections"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    title: str
    paragraphs: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    table: Table | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MeteringScope:
    """What per-device metering the aggregator sends, from the CBP profile the nodes run
    (``cbp.roles.profile.metering_scope``); the defaults are the standard timing's."""

    sample_period: timedelta = timedelta(seconds=4)
    before: timedelta = timedelta(minutes=5)
    after: timedelta = timedelta(minutes=5)
    tracking_lag: timedelta = timedelta(seconds=8)
    share_step: Decimal = Decimal("0.01")  # per-device values: shares of the rated power

    def samples_per_device(self, activation: timedelta) -> int:
        """Per-device samples one activation of this length sends, from ``before`` the first
        setpoint to ``after`` the last one plus the tracking lag."""
        window = self.before + activation + self.tracking_lag + self.after
        return window // self.sample_period


def _days(age: timedelta) -> str:
    return f"{age.days} days"


def _settings(config: PrivacyConfig, scope: MeteringScope) -> Section:
    return Section(title="Settings in force", items=(
        f"k-threshold (smallest group reported separately): {config.k_threshold}",
        f"raw device telemetry at the aggregator: {_days(config.raw_retention)}",
        f"per-device rows at the TSO: {_days(config.tso_device_retention)}",
        f"captured aggregator->TSO messages: {_days(config.capture_retention)}",
        f"pseudonym month calendar: {config.month_timezone}",
        "recipients: " + ", ".join(r.name for r in config.recipients),
        f"per-device metering: {scope.sample_period.total_seconds():g}-s samples as shares of "
        f"the device's rated power in steps of {scope.share_step}, from "
        f"{scope.before.total_seconds():g} s before an activation to "
        f"{scope.after.total_seconds():g} s after it",
    ))


def _roles(config: PrivacyConfig) -> Section:
    rows = [
        ("Prosumer (household)", "data subject",
         "owns the devices, gives or withdraws consent, is paid for delivered energy"),
        ("Aggregator", "controller; the pseudonymising controller",
         "holds every identity in its vault, runs the devices' VTN, derives the pseudonyms, "
         "sends pseudonymised data to the recipients below"),
    ]
    rows += [(r.name, "recipient and controller of what it receives",
              "receives pseudonymised data for: " + ", ".join(r.purposes))
             for r in config.recipients]
    return Section(
        title="Roles and arrangements", table=Table(
            columns=("Party", "GDPR role", "What it does"), rows=tuple(rows)),
        paragraphs=(
            "Each recipient receives pseudonymised data only and holds none of the additional "
            "information (keys, salts, identities). That it does not try to re-identify "
            "households, and how long it keeps what it receives, is agreed in the data-sharing "
            "arrangement between aggregator and recipient: crowdflex cannot enforce that "
            "agreement, only keep the additional information out of the recipient's reach.",
        ))


_PURPOSE_DATA = {
    ONBOARDING_PURPOSE: "device registration and dispatch of setpoints to the device",
    "balancing-validation": "per-device metering under pseudonyms to the TSO",
    GCP_PURPOSE: "the connection point's own pseudonym to the TSO",
    "settlement": "delivered energy per device, the prosumer's payout",
}


def _purposes(config: PrivacyConfig) -> Section:
    purposes = dict.fromkeys((ONBOARDING_PURPOSE, *(p for r in config.recipients
                                                    for p in r.purposes), "settlement"))
    rows = tuple((p, _PURPOSE_DATA.get(p, "as configured"), config.legal_basis[p])
                 for p in purposes if p in config.legal_basis)
    return Section(
        title="Purposes and legal bases", table=Table(
            columns=("Purpose", "Processing", "Legal basis (GDPR art. 6), exactly one"),
            rows=rows),
        paragraphs=(
            "A device registers with the aggregator, and is dispatched, only while its owner's "
            f"'{ONBOARDING_PURPOSE}' consent is on record in the vault (checked at every "
            f"activation); a per-device row leaves for the TSO only while the "
            f"'{VALIDATION_PURPOSE}' consent is (checked at every message).",
        ))


def data_flows(config: PrivacyConfig) -> Table:
    rows = [
        ("Prosumer name, postcode, EAN of the connection, contract, device serial/VIN, "
         "device_uuid, per-device random salt, consent records",
         "Aggregator only (identity vault: name, postcode, EAN, contract, serial and salts "
         "AES-256-GCM encrypted under each household's data key; device_uuid, prosumer id and "
         "consent records in clear, consent records authenticated)",
         "Not pseudonymised: never leaves the aggregator"),
        ("Raw 4-second device samples (kW), keyed by the device's certificate fingerprint",
         "Aggregator only", "No name, address or EAN attached"),
    ]
    for recipient in config.recipients:
        for purpose in recipient.purposes:
            data = ("Grid connection point identified by its own pseudonym (never the EAN)"
                    if purpose == GCP_PURPOSE else
                    "Per device: pseudonym, device class, power bucket, bidding zone, pool id "
                    "(a class x bucket x zone combination shared by fewer than "
                    f"{config.k_threshold} devices is generalised); measurements as shares of "
                    "its rated power, only inside activation windows and only while its owner's "
                    "validation consent stands")
            rows.append((data, f"{recipient.name} ({purpose})",
                         f"Keyed pseudonym per recipient, purpose and calendar month "
                         f"({config.month_timezone})"))
    return Table(columns=("Data", "Held by / sent to", "Pseudonymisation"), rows=tuple(rows))


def _retention(config: PrivacyConfig) -> Section:
    rows = tuple((str(e.holder), str(e.store), e.where, e.holds, e.kept)
                 for e in retention_schedule(config))
    return Section(
        title="Retention per store", table=Table(
            columns=("Holder", "Store", "Where", "Holds", "Kept"), rows=rows),
        paragraphs=(
            "Backups of any store keep what the store held when they were taken: the "
            "operator's backup policy must not keep them longer than the store's own age.",
        ))


def _pseudonymisation(config: PrivacyConfig) -> Section:
    return Section(title="Pseudonymisation (EDPB Guidelines 01/2025 terms)", items=(
        "Pseudonymising controller: the aggregator.",
        "Pseudonymisation domain: each recipient, per purpose and per calendar month ("
        f"{config.month_timezone}); within a domain a device keeps one pseudonym, so the "
        "recipient can validate per device; across domains its pseudonyms are unlinkable "
        "without the additional information.",
        "Additional information, kept by the aggregator only and apart from the pseudonymised "
        "data: the master key (key file or environment, never in the vault file), the "
        "households' data keys (wrapped, in the keyring file), the per-device random salts and "
        "the identities (in the vault, encrypted under those data keys).",
        "Transformation: HMAC-SHA256 under a key derived (HKDF-SHA256) from the master key for "
        "recipient, purpose and month, over the random device_uuid and the device's salt, "
        "truncated to 128 bits. No EAN, serial or name enters it, so enumerating EANs gains "
        "nothing.",
    ))


def _necessity(scope: MeteringScope) -> Section:
    isp = timedelta(minutes=15)
    return Section(title="Why per-device data, and how much", paragraphs=(
        "The TSO pays the aggregator for energy delivered by the devices of a pool. Per-device "
        "rows let it check that the pool total is the sum of registered devices and that no "
        "device delivers for two pools; pool totals alone would not show either. crowdflex's TSO "
        "node stores these rows for such checks and deletes them at their age; it does not run "
        "the checks itself: its settlement reads the pool rows.",
        f"Sent per activated device and activation: {scope.sample_period.total_seconds():g}-s "
        f"samples as shares of the device's rated power (steps of {scope.share_step}) from "
        f"{scope.before.total_seconds():g} s before the "
        f"first setpoint to {scope.after.total_seconds():g} s after the last one (plus the "
        f"{scope.tracking_lag.total_seconds():g}-s tracking lag): "
        f"{scope.samples_per_device(isp)} samples for a 15-minute activation. Devices that were "
        "not dispatched send no per-device row.",
    ))


def _rights(config: PrivacyConfig) -> Section:
    recipients = ", ".join(r.name for r in config.recipients)
    return Section(title="Data-subject rights", items=(
        "Access (art. 15), aggregator-held data: `crowdflex privacy access --vault FILE "
        "--prosumer ID --reason TEXT` prints the identity record, consents and devices the "
        "vault holds; reading them is written to the audit log with who asked and why.",
        f"Access, data held by a recipient ({recipients}): a recipient holds no identity, so it "
        "can only search its data by pseudonym. The same command lists, per recipient, every "
        "pseudonym under which it may hold the household's data (every month since "
        "onboarding); the aggregator hands that list to the recipient, which answers from its "
        "own stores. crowdflex has no recipient-side export command: that answer is part of "
        "the data-sharing arrangement.",
        "Erasure (art. 17 and 19): `crowdflex privacy erase` lists every pseudonym ever issued "
        "per recipient, destroys the household's data key and rows, and the running aggregator "
        "delivers each recipient's notice over OpenADR; the TSO deletes the rows and captures "
        "naming those pseudonyms before it acknowledges, and `crowdflex privacy erasures` shows "
        "each notice as pending or acknowledged.",
        "Withdrawal of consent (art. 7(3)): `crowdflex privacy withdraw --vault FILE "
        "--prosumer ID --purpose PURPOSE` records it in the vault, which is read from the file "
        "at every consent check.",
        "Rectification (art. 16): crowdflex has no command to correct a vault record yet.",
    ))


def _risks(config: PrivacyConfig, scope: MeteringScope) -> Section:
    k, zone = config.k_threshold, config.month_timezone
    window = (f"{scope.before.total_seconds():g} s before to {scope.after.total_seconds():g} s "
              "after an activation")
    rows = (
        ("Re-identification by load curve: a recipient matches a device's curve with metering "
         "data it obtains elsewhere", "medium", "high",
         f"per-device rows only for dispatched devices, only from {window}, as shares of the "
         f"device's rated power in steps of {scope.share_step}; pseudonyms change every "
         f"calendar month ({zone})",
         "a party holding the household's own meter data can still match curve shapes inside "
         "one month; forbidden by the data-sharing arrangement, not by code"),
        ("Re-identification by order: a device keeps its position or rank in the lists sent "
         "each month, linking its monthly pseudonyms", "low", "medium",
         "every list sent to the TSO (the pool registration's devices and connection points, "
         "the per-device metering) is shuffled per message; dispatch ties are broken under a "
         "key drawn per activation; both drawn from the operating system's random source, "
         "not a seeded generator whose state the shuffles would give away; the pool is "
         "registered again at every month boundary "
         f"({zone}) under new pseudonyms, whether or not its devices changed",
         "a TSO playing position, rank, sort-order, timing and attribute matches over two "
         "months links no more devices than chance (tests/cbp/test_privacy_linkage.py)"),
        ("Re-identification by attribute combination: a rare class, power bucket, zone or "
         "connection point singles out a household", "medium", "medium",
         "per device only a class, a power bucket and a zone are registered, every "
         f"combination of them shared by at least k = {k} devices (smaller groups are "
         "generalised when the registration is built, and the outbound filter refuses one that "
         "is not); connection points are listed once per pool, not per device",
         "dispatch follows a class priority, so the timing of a generalised device's "
         "curtailment may hint at its class (not tested)"),
        ("Elimination after erasure: the one entry the remaining devices do not explain is "
         "the erased household", "low", "medium",
         "each erasure notice lists every pseudonym the household was ever issued for that "
         "recipient, every month since onboarding; the TSO deletes their rows and the "
         "captures naming them before acknowledging",
         "the TSO learns that some pseudonyms were erased, and when"),
        ("Insider at the aggregator looks up households without cause", "medium", "high",
         "every path from pseudonym or device_uuid to identity needs who and why and writes a "
         "hash-chained audit entry with keyed references only; `crowdflex privacy verify-log` "
         "names the first broken entry",
         "a holder of the master key can read everything and rewrite the whole chain; entries "
         "cut off the end show only against a copy of the head the verifier prints; the "
         "devices file and the running node pair certificate, device_uuid and prosumer_id in "
         "clear, without an audit entry"),
        ("Key compromise: the master key leaks", "low", "high",
         "the master key is kept outside the vault file; separate keys are derived for data "
         "key wrapping, integrity and pseudonyms; households' data keys sit in a separate "
         "keyring; rotation re-wraps every data key",
         "with the vault and keyring too, every identity and every month's pseudonyms can be "
         "recomputed until the household is erased; rotation does not change past months' "
         "pseudonyms"),
        ("A copy of the vault and its keyring taken before an erasure is restored", "low",
         "high",
         "the keyring is a file of its own, to be kept with the master keys and out of data "
         "backups; a copy of the vault file alone opens nothing of an erased household",
         "a keyring copy older than an erasure, with the master key, undoes that erasure"),
    )
    return Section(title="Risks", table=Table(
        columns=("Risk", "Likelihood", "Severity", "Mitigation", "Residual"), rows=rows))


def dpia_sections(config: PrivacyConfig, scope: MeteringScope) -> tuple[Section, ...]:
    return (
        Section(title="About this DPIA", paragraphs=(
            "Generated by `crowdflex privacy dpia` from the [privacy] and [profile] tables "
            "the TSO and aggregator nodes run with; regenerate it whenever they change.",
        )),
        _settings(config, scope),
        _roles(config),
        _purposes(config),
        Section(title="Data flows", table=data_flows(config)),
        _retention(config),
        _pseudonymisation(config),
        _necessity(scope),
        _rights(config),
        _risks(config, scope),
    )
