"""`crowdflex conformance`: the schema suite here, the live suites (``vtn``, ``ven``) beside it.

`crowdflex conformance schemas` judges OpenADR 2.0b documents against the crowdflex decoder.

Given files or folders (folders are searched recursively for ``*.xml``) it decodes each with a
real codec, prints one verdict line per file with the reason, then ``N passed, M failed``; with no
PATH it checks the bundled corpus against the bundled manifest. Exit codes: 0 all passed, 1 some
failed, 2 the command itself could not run (missing path, broken manifest, unwritable JUnit file).
Labelled files (``--manifest``, same format as schemas/conformance/manifest.toml) must produce their
label; unlabelled files must decode. ``--junit FILE`` writes one JUnit testcase per file for CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from cbp.cli import SubCommands
from cbp.cli._conformance_ven import add_ven_suite
from cbp.cli._conformance_vtn import add_vtn_suite
from schemas.conformance import (
    ManifestError,
    Verdict,
    check_paths,
    corpus_dir,
    verdicts_junit_xml,
)

__all__ = ["register"]


def register(commands: SubCommands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "conformance",
        help="conformance checks: documents against the decoder, live suites against a VTN or VEN",
        description="Conformance checks for testers. 'schemas' decodes documents and judges "
        "each against its label; 'vtn' plays a VEN against a VTN under test; 'ven' serves a "
        "VTN to a VEN under test.",
    )
    suites = parser.add_subparsers(dest="conformance_suite", required=True, metavar="SUITE")
    schemas = suites.add_parser(
        "schemas",
        help="decode files or folders of XML and judge each against its label",
        description="Decode each PATH (folders: every *.xml below them) through the hardened "
        "decoder and print a verdict per file. Labelled files must produce their label "
        "(valid, or an error class such as SchemaViolation); unlabelled files must decode. "
        "With no PATH, the bundled corpus is checked against its manifest.",
    )
    schemas.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="file or folder")
    schemas.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help='TOML labels, one table per file: ["rel/path.xml"] expect = "valid" or an error '
        'class name, reason = "why"',
    )
    schemas.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    schemas.set_defaults(run=run_schemas)
    add_vtn_suite(suites)
    add_ven_suite(suites)


def _shown(path: Path) -> str:
    """Paths relative to the working directory when below it, so lines stay short."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_schemas(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    paths: list[Path] = list(args.paths) or [corpus_dir()]
    missing = [path for path in paths if not path.exists()]
    if missing:
        listed = ", ".join(map(str, missing))
        print(f"crowdflex conformance: no such file or folder: {listed}", file=sys.stderr)
        return 2
    try:
        verdicts = check_paths(paths, manifest=args.manifest)
    except ManifestError as exc:
        print(f"crowdflex conformance: {exc}", file=sys.stderr)
        return 2
    _print(verdicts, out)
    if args.junit is not None:
        try:
            args.junit.write_bytes(verdicts_junit_xml(verdicts, shown=_shown))
        except OSError as exc:
            print(f"crowdflex conformance: cannot write JUnit XML: {exc}", file=sys.stderr)
            return 2
    return 0 if all(verdict.passed for verdict in verdicts) else 1


def _print(verdicts: tuple[Verdict, ...], out: TextIO) -> None:
    for verdict in verdicts:
        print(verdict.describe(_shown(verdict.file)), file=out)
    failed = sum(1 for verdict in verdicts if not verdict.passed)
    print(f"{len(verdicts) - failed} passed, {failed} failed", file=out)
