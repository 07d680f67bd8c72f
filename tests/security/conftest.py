"""The security tests' fixtures: a database URL on every engine the VTN supports
(tests.kit.databases), and a SQLite file's URL for the tests that need one engine only."""

from pathlib import Path

import pytest

from tests.kit.databases import storage_url

__all__ = ["sqlite_url", "storage_url"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vtn.db'}"
