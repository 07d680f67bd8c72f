"""Session-wide fixtures: the test PKI (minted once per session, tests.kit.pki), the ready
``vtn_ssl_context`` / ``ven_ssl_context``, the hypothesis profile, and the CI rule that a skipped
test is a failure."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.kit.pki import Pki, mint_pki

# Wall-clock limits belong in bench/, not in pass/fail tests: on a loaded 2-core machine a single
# example can take 100x its usual time, so hypothesis deadlines and the too-slow check are off.
settings.register_profile(
    "crowdflex", deadline=None, suppress_health_check=(HealthCheck.too_slow,)
)
settings.load_profile("crowdflex")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return mint_pki(tmp_path_factory.mktemp("pki"), tmp_path_factory.mktemp("pki-untrusted"))


@pytest.fixture
def vtn_ssl_context(pki: Pki) -> ssl.SSLContext:
    """Server context for the trusted VTN: client certificates required, TLS 1.3."""
    return pki.server_context()


@pytest.fixture
def ven_ssl_context(pki: Pki) -> ssl.SSLContext:
    """Client context for ``pki.ven``: verifies the VTN against the trusted CA, TLS 1.3."""
    return pki.client_context()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    """In CI (``CI=true``, as .ci/run runs) a skipped test is a failure: every service and
    package a test needs is installed there, so a skip can only hide a missing install step."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must install what this test needs: " \
                          f"{report.longrepr}"
