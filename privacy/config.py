"""Privacy configuration: k, retention, recipients and purposes, and each purpose's legal basis.

Read from the ``[privacy]`` table of a TOML file (the deployment's config); every number the
report prints comes from here, and the running TSO and aggregator nodes read the same table, so
the report cannot drift from what runs. Invariants: k >= 2, every retention >= 1 day, captures
(which hold per-device rows) are kept no longer than the TSO's per-device data, every configured
purpose has a stated GDPR art. 6 legal basis, recipient and purpose names contain no ``|`` (they
feed the pseudonym key derivation).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from .errors import PrivacyConfigError
from .vault import GCP_PURPOSE, ONBOARDING_PURPOSE

__all__ = [
    "DEFAULT_LEGAL_BASIS",
    "VALIDATION_PURPOSE",
    "PrivacyConfig",
    "Recipient",
    "config_from_document",
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


def _expect(table: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind):
        raise PrivacyConfigError(f"[privacy] {key} must be a {kind.__name__}")
    return value


def _days(table: dict[str, Any], key: str, default: timedelta) -> timedelta:
    value = table.get(key, default.days)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 36_500:
        raise PrivacyConfigError(f"[privacy] {key} must be a whole number of days, 1 to 36500")
    return timedelta(days=value)


def load_config(path: Path | None) -> PrivacyConfig:
    """The ``[privacy]`` table of a TOML file; the defaults when ``path`` is None."""
    if path is None:
        return PrivacyConfig()
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PrivacyConfigError(f"cannot read config {path}: {exc}") from None
    return config_from_document(document)


def config_from_document(document: dict[str, Any]) -> PrivacyConfig:
    """The ``[privacy]`` table of an already parsed TOML document (a node's own config file)."""
    table = _expect(document, "privacy", dict, {})
    defaults = PrivacyConfig()
    recipients = (
        tuple(
            Recipient(name=str(r["name"]), purposes=tuple(str(p) for p in r["purposes"]))
            for r in _expect(table, "recipients", list, [])
        )
        or defaults.recipients
    )
    basis = dict(DEFAULT_LEGAL_BASIS) | {
        str(k): str(v) for k, v in _expect(table, "legal_basis", dict, {}).items()
    }
    return PrivacyConfig(
        k_threshold=_expect(table, "k_threshold", int, defaults.k_threshold),
        raw_retention=_days(table, "raw_retention_days", defaults.raw_retention),
        tso_device_retention=_days(table, "tso_device_retention_days",
                                   defaults.tso_device_retention),
        capture_retention=_days(table, "capture_retention_days", defaults.capture_retention),
        month_timezone=_expect(table, "month_timezone", str, defaults.month_timezone),
        recipients=recipients,
        legal_basis=MappingProxyType(basis),
    )
