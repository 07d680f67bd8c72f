"""Keyed, per-recipient, per-purpose, per-month pseudonyms (docs/architecture.md#privacy-design).

``K = HKDF-SHA256(root, salt=b"cbp-pseudonym-v1", info="R|P|E", length=32)`` and
``pseudonym = "psn1_" + base32(HMAC-SHA256(K, device_uuid.bytes + salt)[:16]).lower()``, RFC 4648
base32 without padding: 26 characters from ``a-z2-7``. The vault's ``root`` is never the master
key itself but the master key's ``pseudonym`` domain key (:func:`privacy.keys.domain_key`), so
a vault with master key M issues ``pseudonym(domain_key(M, "pseudonym"), ...)``.

Invariants: different recipient, purpose or month -> an independent key, so pseudonyms cannot be
linked across them without the master key; within one (R, P, E) a device's pseudonym is stable so
the recipient can validate per device; without the per-device salt (erased from the vault) nobody,
the aggregator included, can recompute it. ``|`` is refused inside R and P so that the info string
is unambiguous ("A|B" + "C" never equals "A" + "B|C").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime
from typing import Final
from uuid import UUID
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "PSEUDONYM_PATTERN",
    "PSEUDONYM_PREFIX",
    "is_pseudonym",
    "month_of",
    "months_between",
    "next_month",
    "pseudonym",
    "pseudonym_in_scope",
    "scope_key",
    "validate_month",
]

_HKDF_SALT: Final = b"cbp-pseudonym-v1"
PSEUDONYM_PREFIX: Final = "psn1_"
PSEUDONYM_PATTERN: Final = re.compile(r"psn1_[a-z2-7]{26}")
_MONTH: Final = re.compile(r"(\d{4})-(\d{2})")
MIN_SALT_BYTES: Final = 16


def validate_month(month: str) -> str:
    """Return ``month`` if it is ``YYYY-MM`` with a real month (01..12); else raise ValueError."""
    match = _MONTH.fullmatch(month)
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise ValueError(f"month must be YYYY-MM (e.g. 2025-03), got {month!r}")
    return month


def month_of(at: datetime, zone: str = "Europe/Amsterdam") -> str:
    """The pseudonym month of an instant, on the market's local calendar (the ISP calendar)."""
    if at.tzinfo is None:
        raise ValueError("month_of() needs a timezone-aware datetime")
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m")


def next_month(month: str) -> str:
    """The ``YYYY-MM`` after ``month``."""
    year, number = map(int, validate_month(month).split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def months_between(first: str, last: str) -> tuple[str, ...]:
    """Every month from ``first`` to ``last`` inclusive (empty when ``last`` is earlier)."""
    months, month = [], validate_month(first)
    while month <= validate_month(last):
        months.append(month)
        month = next_month(month)
    return tuple(months)


def _label(name: str, value: str) -> str:
    if not value or "|" in value:
        raise ValueError(f"{name} must be non-empty and must not contain '|', got {value!r}")
    return value


def scope_key(root: bytes, recipient: str, purpose: str, month: str) -> bytes:
    """``K`` for one (recipient, purpose, month); derive it once to pseudonymise many devices."""
    if len(root) < 32:
        raise ValueError("root must be at least 32 bytes")
    info = f"{_label('recipient', recipient)}|{_label('purpose', purpose)}|{validate_month(month)}"
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=info.encode("utf-8")
    ).derive(root)


def pseudonym_in_scope(key: bytes, device_uuid: UUID, salt: bytes) -> str:
    """The pseudonym of one device under a key from :func:`scope_key`."""
    if len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"salt must be at least {MIN_SALT_BYTES} random bytes")
    digest = hmac.new(key, device_uuid.bytes + salt, hashlib.sha256).digest()[:16]
    return PSEUDONYM_PREFIX + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def pseudonym(
    root: bytes,
    device_uuid: UUID,
    salt: bytes,
    recipient: str,
    purpose: str,
    month: str,
) -> str:
    """The pseudonym of one device for one recipient, purpose and month."""
    return pseudonym_in_scope(scope_key(root, recipient, purpose, month), device_uuid, salt)


def is_pseudonym(text: str) -> bool:
    """True when ``text`` is shaped like a v1 pseudonym."""
    return PSEUDONYM_PATTERN.fullmatch(text) is not None
