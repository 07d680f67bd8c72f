"""Conformance corpus: the bundled corpus holds and the checker judges (the command line that
runs it is tests/conformance/test_schemas_command.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from schemas.conformance import (
    VALID,
    Verdict,
    bundled_manifest,
    check_paths,
    corpus_dir,
)

from .xsd_oracle import assert_xsd_valid

PAYLOAD_TYPES = frozenset(
    {
        *("oadrQueryRegistration", "oadrCreatePartyRegistration", "oadrCreatedPartyRegistration"),
        *("oadrCancelPartyRegistration", "oadrCanceledPartyRegistration"),
        *("oadrRequestReregistration", "oadrRequestEvent", "oadrDistributeEvent"),
        *("oadrCreatedEvent", "oadrRegisterReport", "oadrRegisteredReport", "oadrCreateReport"),
        *("oadrCreatedReport", "oadrUpdateReport", "oadrUpdatedReport", "oadrCancelReport"),
        *("oadrCanceledReport", "oadrCreateOpt", "oadrCreatedOpt", "oadrCancelOpt"),
        *("oadrCanceledOpt", "oadrPoll", "oadrResponse"),
    }
)
VALID_DIR = corpus_dir() / "valid"


@pytest.fixture(scope="module")
def corpus_verdicts() -> tuple[Verdict, ...]:
    return check_paths([corpus_dir()])


def _payload_type(path: Path) -> str:
    root = etree.fromstring(path.read_bytes())
    return etree.QName(root[0][0]).localname


def test_bundled_corpus_meets_every_label(corpus_verdicts: tuple[Verdict, ...]) -> None:
    failures = [v.describe() for v in corpus_verdicts if not v.passed]
    assert not failures, "\n".join(failures)
    # Every file in the corpus is labelled, and every label found its file.
    assert all(v.expected is not None for v in corpus_verdicts)
    assert len(corpus_verdicts) == len(bundled_manifest().labels)


def test_corpus_covers_every_payload_type_and_many_defects() -> None:
    labels = [expectation for _, expectation in bundled_manifest().labels]
    invalid = [e for e in labels if e.expect != VALID]
    assert len(invalid) >= 40
    assert {e.expect for e in invalid} >= {
        "HostileDocument",
        "MalformedXml",
        "SchemaViolation",
        "UnknownPayload",
    }
    assert all(e.reason for e in labels)
    covered = {_payload_type(path) for path in VALID_DIR.glob("*.xml")}
    assert covered == PAYLOAD_TYPES


@pytest.mark.parametrize("path", sorted(VALID_DIR.glob("*.xml")), ids=lambda p: p.stem)
def test_valid_vectors_pass_the_independent_xsd_oracle(path: Path) -> None:
    assert_xsd_valid(path.read_bytes())


def test_schema_violations_get_a_path_precise_reason(
    corpus_verdicts: tuple[Verdict, ...],
) -> None:
    by_name = {v.file.name: v for v in corpus_verdicts}
    verdict = by_name["poll_missing_venid.xml"]
    assert verdict.outcome.response_code == 454
    assert verdict.outcome.reason.startswith(
        "/oadr:oadrPayload/oadr:oadrSignedObject/oadr:oadrPoll"
    )
    assert "ei:venID" in verdict.outcome.reason
    # Hostile documents keep the intake's own reason: they never reach xmlschema.
    assert "DOCTYPE" in by_name["doctype_xxe_file.xml"].outcome.reason
