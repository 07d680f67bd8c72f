"""Packaging metadata builds without setuptools' deprecation warning: ``project.license`` is an
SPDX expression (a table is deprecated), which needs setuptools 77 or later to build."""

from __future__ import annotations

import re
import tomllib

from tests.acceptance import ROOT


def test_the_license_is_an_spdx_expression_for_a_setuptools_that_reads_it() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    setuptools = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    found = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools[0])
    assert found is not None and int(found[1]) >= 77
