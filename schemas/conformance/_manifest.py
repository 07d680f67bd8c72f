"""The conformance manifest: which files must decode, and which error each other file must raise.

Format (TOML), one table per file, keyed by the file's path relative to the manifest::

    ["corpus/invalid/schema/poll_missing_venid.xml"]
    expect = "SchemaViolation"     # or "valid"
    reason = "oadrPoll without its required ei:venID"

Invariants: ``expect`` is ``"valid"`` or the name of a class in the crowdflex error tree (see
``schemas._errors``); an ancestor name matches its subclasses (``InvalidData`` accepts a
``SchemaViolation``). Paths are resolved once, at load time, so a verdict finds its label whatever
the working directory.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .. import _errors
from .._errors import CrowdflexError

__all__ = ["ERROR_CLASSES", "VALID", "Expectation", "Manifest", "ManifestError", "load_manifest"]

VALID = "valid"

# Every class of the error tree a label may name, by its class name.
ERROR_CLASSES: dict[str, type[CrowdflexError]] = {
    name: getattr(_errors, name) for name in _errors.__all__
}


class ManifestError(CrowdflexError):
    """The manifest itself is broken: not TOML, unknown expectation, missing field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """What one manifest entry says about one file."""

    expect: str
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.expect == VALID


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """Labels by resolved file path; ``source`` is the manifest file they came from."""

    source: Path | None
    labels: tuple[tuple[Path, Expectation], ...] = ()

    def lookup(self, path: Path) -> Expectation | None:
        resolved = path.resolve()
        for labelled, expectation in self.labels:
            if labelled == resolved:
                return expectation
        return None

    def merged(self, other: Manifest) -> Manifest:
        """Labels of both; ``other`` wins where both label the same file."""
        mine = dict(self.labels)
        mine.update(other.labels)
        return Manifest(source=other.source or self.source, labels=tuple(mine.items()))


def _expectation(key: str, entry: object) -> Expectation:
    if not isinstance(entry, dict):
        raise ManifestError(f"[{key!r}] must be a table with expect = ... and reason = ...")
    expect, reason = entry.get("expect"), entry.get("reason", "")
    if not isinstance(expect, str) or not isinstance(reason, str):
        raise ManifestError(f"[{key!r}]: expect and reason must be strings")
    if expect != VALID and expect not in ERROR_CLASSES:
        known = ", ".join(sorted(ERROR_CLASSES))
        raise ManifestError(f"[{key!r}]: expect = {expect!r} is neither 'valid' nor one of {known}")
    unknown = set(entry) - {"expect", "reason"}
    if unknown:
        raise ManifestError(f"[{key!r}]: unknown field(s) {', '.join(sorted(unknown))}")
    return Expectation(expect=expect, reason=reason)


def load_manifest(path: Path) -> Manifest:
    """Read and check a manifest; relative keys resolve against the manifest's own folder."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    base = path.resolve().parent
    labels = tuple(
        ((base / key).resolve(), _expectation(key, entry)) for key, entry in table.items()
    )
    return Manifest(source=path, labels=labels)
