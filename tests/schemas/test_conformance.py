"""Conformance suite: the bundled corpus holds, the checker judges, the CLI reports and survives."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

import schemas
from cbp.cli import main
from schemas.conformance import (
    VALID,
    Verdict,
    bundled_manifest,
    check_paths,
    corpus_dir,
    load_manifest,
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
DTD_ENTITY = corpus_dir() / "invalid" / "hostile" / "doctype_xxe_file.xml"


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


def _plant(folder: Path) -> Path:
    """Two good vectors and one bad one (an element the XSD does not know) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("oadrPoll.xml", "oadrDistributeEvent.xml"):
        shutil.copy(VALID_DIR / name, folder / name)
    bad = folder / "nested" / "R&D <poll>.xml"
    bad.parent.mkdir()
    poll = (VALID_DIR / "oadrPoll.xml").read_bytes()
    bad.write_bytes(poll.replace(b"</ei:venID>", b"</ei:venID><ei:comment>x</ei:comment>"))
    return bad


def test_planted_bad_file_fails_the_run_and_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _plant(tmp_path / "vectors")
    assert main(["conformance", "schemas", str(tmp_path / "vectors")]) == 1
    lines = capsys.readouterr().out.splitlines()
    failing = [line for line in lines if line.startswith("FAIL")]
    assert len(failing) == 1
    assert str(bad) in failing[0] or bad.name in failing[0]
    assert "SchemaViolation 454 (unlabelled)" in failing[0]
    assert "ei:comment" in failing[0]
    assert lines[-1] == "2 passed, 1 failed"


def test_junit_xml_is_well_formed_with_the_right_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _plant(tmp_path / "vectors")
    report = tmp_path / "junit.xml"
    code = main(["conformance", "schemas", str(tmp_path / "vectors"), "--junit", str(report)])
    assert code == 1
    root = etree.fromstring(report.read_bytes())
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    cases = suite.findall("testcase")
    assert len(cases) == 3
    failed = [case for case in cases if case.find("failure") is not None]
    assert len(failed) == 1
    assert failed[0].get("file") == str(bad.resolve())  # "&" and "<" survived escaping
    failure = failed[0].find("failure")
    assert failure is not None and failure.get("type") == "SchemaViolation"


def test_manifest_labels_turn_expected_errors_into_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _plant(tmp_path / "vectors")
    manifest = tmp_path / "labels.toml"
    rel = bad.relative_to(tmp_path).as_posix()
    manifest.write_text(
        f'["{rel}"]\nexpect = "InvalidData"\nreason = "unknown child; an ancestor class matches"\n'
        '["vectors/oadrPoll.xml"]\nexpect = "valid"\nreason = "poll"\n'
        '["vectors/gone.xml"]\nexpect = "MalformedXml"\nreason = "lost from the folder"\n',
        encoding="utf-8",
    )
    verdicts = check_paths([tmp_path / "vectors"], manifest=manifest)
    by_name = {v.file.name: v for v in verdicts}
    assert by_name[bad.name].passed
    assert by_name["oadrPoll.xml"].expected is not None
    assert not by_name["gone.xml"].passed
    assert by_name["gone.xml"].outcome.result == "missing"


def test_a_wrong_label_fails_and_a_broken_manifest_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant(tmp_path / "vectors")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('["vectors/oadrPoll.xml"]\nexpect = "MalformedXml"\n', encoding="utf-8")
    args = ["conformance", "schemas", str(tmp_path / "vectors" / "oadrPoll.xml")]
    assert main([*args, "--manifest", str(wrong)]) == 1
    assert "FAIL" in capsys.readouterr().out
    broken = tmp_path / "broken.toml"
    broken.write_text('["vectors/oadrPoll.xml"]\nexpect = "Fine"\n', encoding="utf-8")
    assert main([*args, "--manifest", str(broken)]) == 2
    assert "'Fine'" in capsys.readouterr().err
    with pytest.raises(schemas.CrowdflexError):
        load_manifest(broken)


def test_dtd_entity_payload_is_refused_and_the_process_lives_on(tmp_path: Path) -> None:
    # lxml crashes the whole process when a validating parser meets a DTD entity; run the CLI as a
    # user would, in its own process, and see it answer rather than die on a signal.
    planted = tmp_path / "xxe.xml"
    shutil.copy(DTD_ENTITY, planted)
    script = "import sys; from cbp.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", script, "conformance", "schemas", str(planted), str(DTD_ENTITY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # the unlabelled copy fails; no signal death
    assert "FAIL" in done.stdout and "HostileDocument 454 (unlabelled)" in done.stdout
    assert "PASS" in done.stdout and "(expected HostileDocument)" in done.stdout
    assert done.stdout.rstrip().endswith("1 passed, 1 failed")
    # And in this process: refused, then the next document decodes.
    with pytest.raises(schemas.HostileDocument):
        schemas.decode(DTD_ENTITY.read_bytes())
    assert schemas.decode((VALID_DIR / "oadrPoll.xml").read_bytes()) == schemas.Poll(
        ven_id="agg-flexcrowd-01"
    )
