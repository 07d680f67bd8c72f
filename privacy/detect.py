"""Finding identifying data in text: shapes (EAN, Dutch postcode) and values the vault holds.

Shared by the outbound filter (before a message leaves) and the audit (after a run). A vault value
is looked for in every textual form we could plausibly have leaked it in: as written, upper and
lower case, postcode with and without its space, a uuid as hyphenated/hex/braced/urn/integer/base64,
and the unkeyed MD5, SHA-1 and SHA-256 hex digests of each of those (an unkeyed hash of a small
identifier space is reversible by enumeration, so it counts as the identifier itself).

Invariants: matching is case-insensitive; needles of 8+ characters match anywhere (so a uuid
inside a longer id is caught), shorter ones only between non-alphanumerics (so a 5-letter name does
not fire inside an unrelated word); a finding never carries the full value it found.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from .vault import IdentityValue

__all__ = ["EAN_SHAPE", "POSTCODE_SHAPE", "Finding", "LeakDetector", "mask", "shape_findings"]

#: 18 consecutive digits (GS1 EAN-18 connection code; Dutch ones start with 871).
EAN_SHAPE: Final = re.compile(r"(?<!\d)\d{18}(?!\d)")
#: Dutch postcode: 4 digits (first not 0), optional space, 2 capitals (SA, SD, SS are never issued).
POSTCODE_SHAPE: Final = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2}(?![0-9A-Za-z])"
)
_PREFIX_WIDTH: Final = 8
_HASHES: Final = ("md5", "sha1", "sha256")


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    what: str
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def mask(value: str) -> str:
    """Enough of a value to recognise it in the vault, not enough to leak it again in a log."""
    return f"{value[:4]}...{value[-2:]}" if len(value) > 8 else "***"


def shape_findings(text: str, where: str) -> list[Finding]:
    found = [Finding(what=f"EAN-shaped number {mask(m)}", where=where)
             for m in EAN_SHAPE.findall(text)]  # fmt: skip
    found += [Finding(what=f"Dutch-postcode-shaped text {mask(m)}", where=where)
              for m in POSTCODE_SHAPE.findall(text)]  # fmt: skip
    return found


def _textual_forms(item: IdentityValue) -> dict[str, bytes]:
    """Each textual form of the value -> the bytes a careless hash would have been taken over."""
    value = item.value
    forms = {value: value.encode(), value.lower(): value.lower().encode(),
             value.upper(): value.upper().encode()}  # fmt: skip
    for compact in (value.replace(" ", ""), value.replace(":", "")):  # fingerprints: AB:CD:..
        forms[compact] = compact.encode()
    if item.kind in ("device_uuid", "gcp_uuid"):
        u = UUID(value)
        for text in (str(u), u.hex, str(u).upper(), u.hex.upper(), f"{{{u}}}", f"urn:uuid:{u}",
                     str(u.int)):  # fmt: skip
            forms[text] = text.encode()
        for text in (
            base64.b64encode(u.bytes).decode(),
            base64.urlsafe_b64encode(u.bytes).decode(),
        ):
            forms[text.rstrip("=")] = b""
        forms["<raw uuid bytes>"] = u.bytes
    return forms


class LeakDetector:
    """Looks for a fixed set of vault values (and their derived forms) in text."""

    __slots__ = ("_long", "_short", "needle_count", "value_count")

    def __init__(self, values: Iterable[IdentityValue]) -> None:
        self._long: dict[str, list[tuple[str, str]]] = {}
        self._short: dict[int, dict[str, str]] = {}
        self.value_count = 0
        for item in values:
            self.value_count += 1
            for text, hashed_over in _textual_forms(item).items():
                if not text.startswith("<"):
                    self._add(text, f"vault {item.kind} {mask(item.value)}")
                if hashed_over:
                    for name in _HASHES:
                        digest = hashlib.new(name, hashed_over).hexdigest()
                        self._add(digest, f"unkeyed {name} of vault {item.kind} {mask(item.value)}")
        self.needle_count = sum(len(v) for v in self._long.values()) + sum(
            len(v) for v in self._short.values()
        )

    def _add(self, needle: str, label: str) -> None:
        needle = needle.lower()
        if not needle.strip():
            return
        if len(needle) >= _PREFIX_WIDTH:
            self._long.setdefault(needle[:_PREFIX_WIDTH], []).append((needle, label))
        else:
            self._short.setdefault(len(needle), {})[needle] = label

    def scan(self, text: str, where: str) -> list[Finding]:
        """Every needle found in ``text`` (case-insensitive), in the order of where it starts.

        The substrings of the prefix width (and of each short needle's width) are gathered as
        sets first; only the few that are needle prefixes are then looked up in the text again,
        with ``str.find``: one dictionary probe per character and width was the audit's and the
        outgoing filter's whole cost on a 2-MB pool registration."""
        low = text.lower()
        found: list[tuple[int, str]] = []
        for prefix in _substrings(low, _PREFIX_WIDTH) & self._long.keys():
            for start in _occurrences(low, prefix):
                found += [(start, label) for needle, label in self._long[prefix]
                          if low.startswith(needle, start)]
        for width, table in self._short.items():
            for gram in _substrings(low, width) & table.keys():
                found += [(start, table[gram]) for start in _occurrences(low, gram)
                          if _bounded(low, start, width)]
        labels = dict.fromkeys(label for _, label in sorted(found, key=lambda item: item[0]))
        return [Finding(what=label, where=where) for label in labels]


def _substrings(text: str, width: int) -> set[str]:
    """Every substring of ``text`` that is ``width`` characters long."""
    return {text[i : i + width] for i in range(len(text) - width + 1)}


def _occurrences(text: str, part: str) -> list[int]:
    """Where ``part`` starts in ``text``, overlapping occurrences included."""
    starts, start = [], text.find(part)
    while start >= 0:
        starts.append(start)
        start = text.find(part, start + 1)
    return starts


def _bounded(text: str, start: int, width: int) -> bool:
    before = text[start - 1] if start else " "
    after = text[start + width] if start + width < len(text) else " "
    return not before.isalnum() and not after.isalnum()
