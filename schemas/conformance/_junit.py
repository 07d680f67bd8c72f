"""JUnit XML, the format CI systems read: :func:`junit_document` writes any list of
:class:`JunitCase` (the one builder, also for ``cbp.conformance``), :func:`verdicts_junit_xml`
the schema checker's verdicts, one testcase per file.

Built with lxml, so every reason and file name is escaped; characters XML 1.0 cannot carry at all
(control characters a hostile vector may contain) are written as ``\\xNN`` escapes instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lxml import etree

from ._check import Verdict

__all__ = ["JunitCase", "JunitFailure", "junit_document", "verdicts_junit_xml"]

_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class JunitFailure:
    """A ``<failure>``: ``message`` its attribute, ``text`` its body, ``type`` (when given) what
    failed."""

    message: str
    text: str
    type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JunitCase:
    """One ``<testcase>``: failed when it carries a ``failure``."""

    classname: str
    name: str
    file: str | None = None
    failure: JunitFailure | None = None
    system_out: str | None = None


def junit_document(suite: str, cases: Sequence[JunitCase]) -> bytes:
    """A ``<testsuites>`` document with one ``<testsuite>`` named ``suite`` holding ``cases``."""
    failed = sum(1 for case in cases if case.failure is not None)
    attributes = {"name": suite, "tests": str(len(cases)), "failures": str(failed),
                  "errors": "0", "skipped": "0"}
    root = etree.Element("testsuites", attributes)
    testsuite = etree.SubElement(root, "testsuite", attributes)
    for case in cases:
        named = {"classname": case.classname, "name": case.name}
        if case.file is not None:
            named["file"] = case.file
        element = etree.SubElement(testsuite, "testcase",
                                   {key: _xml_safe(value) for key, value in named.items()})
        if case.failure is not None:
            described = {"message": case.failure.message}
            if case.failure.type is not None:
                described = {"type": case.failure.type, **described}
            failure = etree.SubElement(element, "failure",
                                       {key: _xml_safe(value) for key, value in described.items()})
            failure.text = _xml_safe(case.failure.text)
        if case.system_out is not None:
            etree.SubElement(element, "system-out").text = _xml_safe(case.system_out)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def verdicts_junit_xml(
    verdicts: Sequence[Verdict],
    *,
    suite: str = "crowdflex.conformance.schemas",
    shown: Callable[[Path], str] = str,
) -> bytes:
    """One testcase per verdict; a failure carries the verdict line, a pass prints it."""
    cases = []
    for verdict in verdicts:
        name = shown(verdict.file)
        line = verdict.describe(name)
        cases.append(JunitCase(
            classname=suite, name=name, file=str(verdict.file),
            failure=None if verdict.passed else JunitFailure(
                message=line, text=line, type=verdict.outcome.result),
            system_out=line if verdict.passed else None))
    return junit_document(suite, cases)
