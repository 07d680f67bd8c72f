"""`crowdflex conformance schemas` and manifest labels: a planted bad file fails the run and is
named, the JUnit report counts right, and a hostile DTD does not kill the process."""

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
    JunitCase,
    JunitFailure,
    check_paths,
    corpus_dir,
    junit_document,
    load_manifest,
)

VALID_DIR = corpus_dir() / "valid"
DTD_ENTITY = corpus_dir() / "invalid" / "hostile" / "doctype_xxe_file.xml"



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


def test_junit_document_carries_what_xml_cannot_as_escapes() -> None:
    """The one JUnit builder (the schema checker's report and ``cbp.conformance``'s): markup is
    escaped, characters XML 1.0 cannot hold become ``\\xNN``, and the counts are the cases'."""
    hostile = "a\x01<b>&\x1b"
    document = junit_document("suite", [
        JunitCase(classname="suite.x", name=hostile, file=hostile, system_out=hostile),
        JunitCase(classname="suite.x", name="two", failure=JunitFailure(
            message=hostile, text=hostile, type="Kind"))])
    root = etree.fromstring(document)
    suite = root.find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")
    shown = "a\\x01<b>&\\x1b"
    first, second = suite.findall("testcase")
    assert (first.get("name"), first.get("file"), first.findtext("system-out")) == (shown,) * 3
    assert first.find("failure") is None and second.find("system-out") is None
    failure = second.find("failure")
    assert failure is not None
    assert (failure.get("type"), failure.get("message"), failure.text) == ("Kind", shown, shown)


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
