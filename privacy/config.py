"""Privacy configuration: k, retention, recipients and purposes, and each purpose's legal basis.

Read from the ``[privacy]`` table of a TOML file (the deployment's config, through
:mod:`tomlconfig`: an ill-typed or unknown key is a ``ConfigError`` naming file and key); every
number the DPIA prints comes from here, and the running TSO and aggregator nodes read the same
table, so the DPIA cannot drift from what runs. Invariants: k >= 2, every retention >= 1 day,
captures (which hold per-device rows) are kept no longer than the TSO's per-device data, every
configured purpose has a stated GDPR art. 6 legal basis, recipient and purpose names contain no
``|`` (they feed the pseudonym key derivation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Final

from tomlconfig import Table, document

from .devices import ONBOARDING_PURPOSE
from .errors import PrivacyConfigError
from .pseudonyms import GCP_PURPOSE

__all__ = [
    "DEFAULT_LEGAL_BASIS",
    "VALIDATION_PURPOSE",
    "PrivacyConfig",
    "Recipient",
    "config_from_table",
    "load_config",
]

#: the purpose per-device metering to the TSO serves; its consent gates every per-device row
VALIDATION_PURPOSE: Final = "balancing-validation"

DEFAULT_LEGAL_BASIS: Final = MappingProxyType(
    {
        ONBOARDING_PURPOSE: "Art. 6(1)(a) GDPR, consent of the prosumer, recorded in the vault "
        "before the device can register and checked before every dispatch",
        VALIDATION_PURPOSE: "Art. 6(1)(a) GDPR, consent of the prosumer, recorded in the "
        "vault, withdrawable at any time and checked before every per-device row",
        GCP_PURPOSE: "Art. 6(1)(c) GDPR, legal obligation: the TSO must prevent one connection "
        "point from being offered twice (EU Electricity Balancing Guideline 2017/2195)",
        "settlement": "Art. 6(1)(b) GDPR, performance of the prosumer's flexibility contract",
    }
)
# "6(1)(a)" .. "6(1)(f)": a purpose's basis must name exactly one of them
_BASIS: Final = re.compile(r"6\(1\)\([a-f]\)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipient:
    name: str
    purposes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyConfig:
    k_threshold: int = 10
    # the aggregator's raw 4-s device telemetry (its downstream VTN's report points)
    raw_retention: timedelta = timedelta(days=100)
    # the TSO's per-device rows (metering under pseudonyms); pool-level rows are not personal data
    tso_device_retention: timedelta = timedelta(days=90)
    # captured messages of the aggregator->TSO link (they hold per-device rows too)
    capture_retention: timedelta = timedelta(days=30)
    month_timezone: str = "Europe/Amsterdam"
    recipients: tuple[Recipient, ...] = (
        Recipient(name="TSO:TENNET-NL", purposes=(VALIDATION_PURPOSE, GCP_PURPOSE)),
    )
    legal_basis: MappingProxyType[str, str] = field(default_factory=lambda: DEFAULT_LEGAL_BASIS)

    def __post_init__(self) -> None:
        if self.k_threshold < 2:
            raise PrivacyConfigError("k_threshold must be at least 2")
        for key, age in (("raw_retention_days", self.raw_retention),
                         ("tso_device_retention_days", self.tso_device_retention),
                         ("capture_retention_days", self.capture_retention)):
            if age < timedelta(days=1):
                raise PrivacyConfigError(f"[privacy] {key} must be at least 1")
        if self.capture_retention > self.tso_device_retention:
            raise PrivacyConfigError(
                "[privacy] capture_retention_days must not exceed tso_device_retention_days:"
                " captures hold the same per-device rows")
        for recipient in self.recipients:
            for label in (recipient.name, *recipient.purposes):
                if not label or "|" in label:
                    raise PrivacyConfigError(f"recipient/purpose {label!r} is empty or has '|'")
            missing = [p for p in recipient.purposes if p not in self.legal_basis]
            if missing:
                raise PrivacyConfigError(f"no legal basis configured for purposes {missing}")
        for purpose, basis in self.legal_basis.items():
            if len(_BASIS.findall(basis)) != 1:
                raise PrivacyConfigError(
                    f"[privacy.legal_basis] {purpose} must name exactly one legal basis of GDPR"
                    f" art. 6(1)(a)-(f), got {basis!r}")

    def scopes(self) -> tuple[tuple[str, str], ...]:
        """Every (recipient, purpose) pair pseudonyms are issued for."""
        return tuple((r.name, p) for r in self.recipients for p in r.purposes)


def load_config(path: Path | None) -> PrivacyConfig:
    """The ``[privacy]`` table of a TOML file; the defaults when ``path`` is None."""
    if path is None:
        return PrivacyConfig()
    return config_from_table(document(Path(path)).table("privacy"))


def config_from_table(table: Table) -> PrivacyConfig:
    """The ``[privacy]`` table of a TOML file (a node's own config, or the joined tables of
    ``crowdflex privacy dpia``); a key of it nobody reads is refused here."""
    defaults = PrivacyConfig()
    recipients = tuple(Recipient(name=entry.string("name"), purposes=entry.strings("purposes"))
                       for entry in table.tables("recipients")) or defaults.recipients
    named = table.table("legal_basis")
    basis = dict(DEFAULT_LEGAL_BASIS) | {name: named.string(name) for name in named.remaining()}
    config = PrivacyConfig(
        k_threshold=table.integer("k_threshold", low=2) if table.has("k_threshold")
        else defaults.k_threshold,
        raw_retention=_days(table, "raw_retention_days", defaults.raw_retention),
        tso_device_retention=_days(table, "tso_device_retention_days",
                                   defaults.tso_device_retention),
        capture_retention=_days(table, "capture_retention_days", defaults.capture_retention),
        month_timezone=table.string("month_timezone") if table.has("month_timezone")
        else defaults.month_timezone,
        recipients=recipients,
        legal_basis=MappingProxyType(basis),
    )
    table.finish()
    return config


def _days(table: Table, key: str, default: timedelta) -> timedelta:
    if not table.has(key):
        return default
    return timedelta(days=table.integer(key, low=1, high=36_500))
