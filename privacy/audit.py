"""The privacy audit: proof that nothing identifying crossed the aggregator -> TSO link in a run.

Scans every file under ``RUN_DIR/captures/aggregator-tso/`` (one captured message per file). A
file that parses is checked as parsed: every text node (comments and processing instructions
included), attribute value, element and attribute name and namespace, decoded, so a value hidden
behind character references (``&#56;&#55;...``) is found; that is every character of the file
but the markup itself, each distinct string once. A file that does not parse (or declares a
DTD) is checked as raw text instead. Checks: every form of every vault value
(:mod:`privacy.detect`) and anything shaped like an EAN or a Dutch postcode (the shape checks
skip ds:Signature content, whose base64 can look like anything).

Invariants: an empty or missing capture folder is not a pass (nothing was proven); findings name
the file and what was found, never the full value.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lxml import etree

from .detect import EAN_SHAPE, POSTCODE_SHAPE, Finding, LeakDetector, shape_findings
from .vault import IdentityValue

__all__ = ["CAPTURE_SUBDIR", "AuditResult", "audit_run"]

CAPTURE_SUBDIR: Final = Path("captures") / "aggregator-tso"
_DS_SIGNATURE: Final = "{http://www.w3.org/2000/09/xmldsig#}Signature"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditResult:
    folder: Path
    files: tuple[Path, ...]
    vault_values: int
    derived_forms: int
    patterns: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        return bool(self.files) and not self.findings

    def summary(self) -> str:
        lines = [
            f"privacy audit of {self.folder}",
            f"  files checked: {len(self.files)}",
            f"  vault values: {self.vault_values} ({self.derived_forms} forms incl. "
            "case variants, uuid encodings, unkeyed MD5/SHA-1/SHA-256 hex)",
            *(f"  pattern: {p}" for p in self.patterns),
        ]
        if not self.files:
            lines.append("FAIL: no captured messages found; nothing was proven")
        lines += [f"LEAK {f}" for f in self.findings]
        if self.passed:
            lines.append("PASS: no vault value and no EAN- or postcode-shaped text found")
        return "\n".join(lines)


def _parsed_texts(data: bytes) -> dict[tuple[str, bool], None] | None:
    """(string, inside ds:Signature) for every distinct text node, attribute value, element and
    attribute name and namespace of the file; None if it does not parse."""
    if b"<!" in data.replace(b"<!--", b"").replace(b"<![CDATA[", b""):
        return None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    signed = {id(e) for s in root.iter(_DS_SIGNATURE) for e in s.iter()}
    texts: dict[tuple[str, bool], None] = {}
    outside = [*root.itersiblings(preceding=True), *root.itersiblings()]  # comments, PIs
    for element in itertools.chain(outside, root.iter()):
        inside = id(element) in signed
        if isinstance(element, etree._ProcessingInstruction):
            names = [element.target]
        else:
            names = [element.tag, *element.attrib.keys()] if isinstance(element.tag, str) else []
        strings = [element.text, element.tail, *element.attrib.values(), *names]
        texts.update(((str(t), inside), None) for t in strings if t and t.strip())
    for _, declared in etree.iterwalk(root, events=("start-ns",)):  # where each is declared
        texts.update(((str(t), False), None) for t in declared if t and t.strip())
    return texts


def _audit_file(path: Path, where: str, detector: LeakDetector) -> list[Finding]:
    data = path.read_bytes()
    texts = _parsed_texts(data)
    if texts is None:
        # Unparseable: the whole raw text is checked (no signature to skip).
        raw = data.decode("utf-8", errors="replace")
        return (
            detector.scan(raw, where)
            + shape_findings(raw, where)
            + [Finding(what="not parseable XML (raw text checked only)", where=where)]
        )
    findings: list[Finding] = []
    for text, inside_signature in texts:
        findings += detector.scan(text, where)
        if not inside_signature:
            findings += shape_findings(text, where)
    return findings


def audit_run(run_dir: Path, vault_values: Iterable[IdentityValue] = (), *,
              detector: LeakDetector | None = None) -> AuditResult:
    """Audit the run's captured link. ``detector``, when given, is one already built over the
    vault's values (the aggregator's outbound filter's: building one over 2,000 devices' values
    takes seconds); otherwise one is built from ``vault_values``."""
    folder = Path(run_dir) / CAPTURE_SUBDIR
    files = tuple(sorted(p for p in folder.rglob("*") if p.is_file())) if folder.is_dir() else ()
    detector = detector if detector is not None else LeakDetector(vault_values)
    findings: list[Finding] = []
    for path in files:
        found = _audit_file(path, str(path.relative_to(run_dir)), detector)
        findings += dict.fromkeys(found)  # one line per distinct finding per file
    return AuditResult(
        folder=folder,
        files=files,
        vault_values=detector.value_count,
        derived_forms=detector.needle_count,
        patterns=(f"EAN shape {EAN_SHAPE.pattern}", f"postcode shape {POSTCODE_SHAPE.pattern}"),
        findings=tuple(findings),
    )
