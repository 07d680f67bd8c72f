"""JUnit XML for conformance verdicts, the format CI systems read: one testcase per file.

Built with lxml, so every reason and file name is escaped; characters XML 1.0 cannot carry at all
(control characters a hostile vector may contain) are written as ``\\xNN`` escapes instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from lxml import etree

from ._check import Verdict

__all__ = ["junit_xml"]

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def junit_xml(
    verdicts: Sequence[Verdict],
    *,
    suite: str = "crowdflex.conformance.schemas",
    shown: Callable[[Path], str] = str,
) -> bytes:
    """A ``<testsuites>`` document with one ``<testsuite>``; failures carry the verdict line."""
    failed = sum(1 for verdict in verdicts if not verdict.passed)
    attributes = {"name": suite, "tests": str(len(verdicts)), "failures": str(failed),
                  "errors": "0", "skipped": "0"}
    root = etree.Element("testsuites", attributes)
    testsuite = etree.SubElement(root, "testsuite", attributes)
    for verdict in verdicts:
        name = _xml_safe(shown(verdict.file))
        case = etree.SubElement(
            testsuite, "testcase", classname=suite, name=name, file=_xml_safe(str(verdict.file))
        )
        line = _xml_safe(verdict.describe(name))
        if verdict.passed:
            etree.SubElement(case, "system-out").text = line
        else:
            failure = etree.SubElement(
                case, "failure", type=_xml_safe(verdict.outcome.result), message=line
            )
            failure.text = line
    document: bytes = etree.tostring(
        root, xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return document
