"""Fixtures shared by the role-level CBP tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..conftest import Pki
from .rolekit import Rig, build_rig


@pytest.fixture
async def rig(tmp_path: Path, pki: Pki) -> AsyncIterator[Rig]:
    """A TSO, an aggregator and six device VENs over mutual TLS (tests.cbp.rolekit)."""
    built = await build_rig(tmp_path, pki)
    try:
        yield built
    finally:
        await built.close()
