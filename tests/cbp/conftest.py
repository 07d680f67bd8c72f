"""Fixtures shared by the CBP tests: the role rig, and the vault fixtures of tests.kit for the
`crowdflex privacy` command tests, and a database URL on every engine the VTN supports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.kit.databases import storage_url
from tests.kit.pki import Pki
from tests.kit.runs import run_dir
from tests.kit.vaults import household, key_file, keys, vault

from .rolekit import Rig, build_rig

__all__ = ["household", "key_file", "keys", "rig", "run_dir", "storage_url", "vault"]


@pytest.fixture
async def rig(tmp_path: Path, pki: Pki) -> AsyncIterator[Rig]:
    """A TSO, an aggregator and six device VENs over mutual TLS (tests.cbp.rolekit)."""
    built = await build_rig(tmp_path, pki)
    try:
        yield built
    finally:
        await built.close()
