"""OpenADR 2.0b conformance vectors and the checker that judges a decoder against them.

The bundled corpus (``corpus/``) holds a valid message for every one of the 23 payload types, in the
CBP profile's vocabulary, and labelled invalid ones: hostile (DTD, XXE, entity expansion, deep
nesting, non-UTF-8), malformed, schema violations of many kinds, and well-formed XSD elements that
are no payload. ``manifest.toml`` labels each file with the outcome it must produce.

>>> from schemas.conformance import check_paths, corpus_dir
>>> all(v.passed for v in check_paths([corpus_dir()]))
True

The command line is ``crowdflex conformance schemas [PATH...] [--manifest FILE] [--junit FILE]``.
"""

from __future__ import annotations

from ._check import Outcome, Verdict, bundled_manifest, check_paths, corpus_dir, manifest_path
from ._junit import JunitCase, JunitFailure, junit_document, verdicts_junit_xml
from ._manifest import ERROR_CLASSES, VALID, Expectation, Manifest, ManifestError, load_manifest

__all__ = [
    "ERROR_CLASSES",
    "VALID",
    "Expectation",
    "JunitCase",
    "JunitFailure",
    "Manifest",
    "ManifestError",
    "Outcome",
    "Verdict",
    "bundled_manifest",
    "check_paths",
    "corpus_dir",
    "junit_document",
    "load_manifest",
    "manifest_path",
    "verdicts_junit_xml",
]
