"""The conformance checker: decode each file with a real codec and judge it against its label.

Invariants:
- Every file goes through exactly the path a peer's bytes take (``Codec.decode``): hardened intake,
  XSD validation, typed decoding. Nothing is pre-parsed or trusted.
- The checker never dies on a file: a crowdflex error is an outcome, and any other exception (a
  decoder bug) is reported as a failing outcome naming the foreign exception.
- xmlschema (30-97x slower than lxml, docs/architecture.md#where-the-time-goes) is used only to
  explain a :class:`SchemaViolation` with a path-precise reason, never on the decode path, and never
  on a
  document the intake refused as hostile: those never reach any parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from .._codec import Codec, default_codec
from .._errors import RemoteProtocolError, SchemaViolation
from .._intake import parse_untrusted
from ._manifest import VALID, Expectation, Manifest, load_manifest

__all__ = [
    "Outcome",
    "Verdict",
    "bundled_manifest",
    "check_paths",
    "corpus_dir",
    "manifest_path",
]

_REASON_CAP = 300  # enumerations in xmlschema messages run to kilobytes (ISO 4217 codes)


def manifest_path() -> Path:
    """The bundled manifest labelling the bundled corpus."""
    with as_file(files(__package__ or "schemas.conformance").joinpath("manifest.toml")) as path:
        return Path(path)


def corpus_dir() -> Path:
    """The bundled corpus: ``valid/`` for each 2.0b payload type, ``invalid/`` by kind of defect."""
    return manifest_path().parent / "corpus"


def bundled_manifest() -> Manifest:
    return load_manifest(manifest_path())


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What decoding a file produced: ``"valid"`` or an error class name, its code and reason."""

    result: str
    response_code: int | None = None
    reason: str = ""
    # The error class and its ancestors up to RemoteProtocolError, so a label may name an ancestor.
    lineage: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.result == VALID

    def satisfies(self, expectation: Expectation) -> bool:
        return self.result == expectation.expect or expectation.expect in self.lineage


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One file's judgement: labelled files must meet their label, unlabelled ones must decode."""

    file: Path
    outcome: Outcome
    expected: Expectation | None = None
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        judged = (
            self.outcome.valid if self.expected is None else self.outcome.satisfies(self.expected)
        )
        object.__setattr__(self, "passed", judged)

    def describe(self, shown: str | None = None) -> str:
        """One line: PASS/FAIL, file, outcome (class, code), expectation, reason."""
        status = "PASS" if self.passed else "FAIL"
        got = self.outcome.result
        if self.outcome.response_code is not None:
            got += f" {self.outcome.response_code}"
        wanted = "unlabelled" if self.expected is None else f"expected {self.expected.expect}"
        line = f"{status} {shown or self.file}: {got} ({wanted})"
        if self.outcome.reason:
            line += f": {self.outcome.reason}"
        if self.expected is not None and self.expected.reason:
            line += f" [label: {self.expected.reason}]"
        return line


@cache
def _xmlschema_model(directory: Path) -> Any:
    """xmlschema's model of the XSD set (~2 s to build): built on the first failure, then kept."""
    import xmlschema  # only failure reports pay for importing it

    return xmlschema.XMLSchema(str(directory / "oadr_20b.xsd"), allow="local", defuse="always")


def _explain(data: bytes, directory: Path) -> str | None:
    """The first schema error with its element path, or None when xmlschema cannot say."""
    try:
        # Re-parse through the hardened intake: the codec already accepted these bytes as
        # well-formed and free of declarations, or it could not have raised SchemaViolation.
        root = parse_untrusted(data)
        error = next(iter(_xmlschema_model(directory).iter_errors(root)), None)
    except Exception:  # an explanation is a nicety; the verdict stands without it
        return None
    if error is None:
        return None
    return f"{error.path}: {error.reason}"


def _cap(text: str) -> str:
    return text if len(text) <= _REASON_CAP else text[: _REASON_CAP - 3] + "..."


def _lineage(error: RemoteProtocolError) -> tuple[str, ...]:
    names: list[str] = []
    for cls in type(error).__mro__:
        names.append(cls.__name__)
        if cls is RemoteProtocolError:
            break
    return tuple(names)


def _judge(data: bytes, codec: Codec) -> Outcome:
    try:
        message = codec.decode(data)
    except RemoteProtocolError as error:
        reason = error.reason
        if isinstance(error, SchemaViolation):
            reason = _explain(data, codec.schema.directory) or reason
        return Outcome(
            result=type(error).__name__,
            response_code=error.response_code,
            reason=_cap(reason),
            lineage=_lineage(error),
        )
    except Exception as exc:  # a decoder bug must fail one file, not the whole run
        return Outcome(
            result=f"crash:{type(exc).__name__}", reason=_cap(f"not a crowdflex error: {exc}")
        )
    return Outcome(result=VALID, reason=f"decoded as {type(message).__name__}")


def _discover(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.xml") if p.is_file())
        else:
            yield path


def _missing(manifest: Manifest, roots: tuple[Path, ...], seen: set[Path]) -> Iterator[Verdict]:
    """Labelled files under a checked folder that are not there: a corpus lost a vector."""
    for labelled, expectation in manifest.labels:
        if labelled in seen or labelled.exists():
            continue
        if any(labelled.is_relative_to(root) for root in roots):
            outcome = Outcome(result="missing", reason="labelled in the manifest, file not found")
            yield Verdict(file=labelled, outcome=outcome, expected=expectation)


def check_paths(
    paths: Iterable[Path | str],
    codec: Codec | None = None,
    *,
    manifest: Manifest | Path | None = None,
) -> tuple[Verdict, ...]:
    """Check files and folders (recursively ``*.xml``) and return one verdict per file.

    Labels come from the bundled manifest (which labels only the bundled corpus) merged with
    ``manifest`` when given. A path that does not exist is a failing verdict, not an exception.
    """
    codec = codec or default_codec()
    labels = bundled_manifest()
    if manifest is not None:
        labels = labels.merged(
            manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        )
    roots = tuple(Path(p).resolve() for p in paths)
    verdicts: list[Verdict] = []
    seen: set[Path] = set()
    for path in _discover(roots):
        seen.add(path)
        expectation = labels.lookup(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            outcome = Outcome(result="unreadable", reason=str(exc))
            verdicts.append(Verdict(file=path, outcome=outcome, expected=expectation))
            continue
        verdicts.append(Verdict(file=path, outcome=_judge(data, codec), expected=expectation))
    dirs = tuple(root for root in roots if root.is_dir())
    verdicts.extend(_missing(labels, dirs, seen))
    return tuple(verdicts)
