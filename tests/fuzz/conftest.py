"""Build the shared fuzz codec (XSD compile) before any timed hypothesis example runs."""

from __future__ import annotations

import pytest

from .contract import codec


@pytest.fixture(autouse=True, scope="package")
def _warm_codec() -> None:
    codec()
