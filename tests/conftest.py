"""Session-wide test PKI: a trusted CA with VTN and VEN certificates, and an untrusted CA.

Everything is minted once per test session (EC P-256, a few milliseconds) into a temporary
directory; nothing is committed. Tests that need mutual TLS use the ``pki`` fixture's paths and
fingerprints, or the ready ``vtn_ssl_context`` / ``ven_ssl_context`` fixtures, or build their own
with ``pki.server_context(...)`` / ``pki.client_context(...)``.

Layout of ``pki``:

- ``ca_cert``: the CA every trusted node verifies against; ``authority`` mints more from it.
- ``vtn``: a VTN certificate for localhost / 127.0.0.1 / ::1.
- ``vens``: several VEN certificates (client auth only).
- ``revoked_ven`` + ``crl``: a VEN certificate the CRL at ``crl`` revokes.
- ``untrusted_ca_cert``, ``untrusted_vtn``, ``untrusted_ven``: from a second CA nobody trusts.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cbp.pki import CertificateAuthority, IssuedCertificate, Role
from schemas.identity import TlsProfile
from ven.tls import client_context
from vtn.tls import server_context

_VEN_COUNT = 4

# Wall-clock limits belong in bench/, not in pass/fail tests: on a loaded 2-core machine a single
# example can take 100x its usual time, so hypothesis deadlines and the too-slow check are off.
settings.register_profile(
    "crowdflex", deadline=None, suppress_health_check=(HealthCheck.too_slow,)
)
settings.load_profile("crowdflex")


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFiles:
    """One certificate on disk, with its key, PEM text and OpenADR fingerprint."""

    name: str
    cert: Path
    key: Path
    cert_pem: bytes
    fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    directory: Path
    authority: CertificateAuthority
    ca_cert: Path
    ca_fingerprint: str
    vtn: CertFiles
    vens: tuple[CertFiles, ...]
    revoked_ven: CertFiles
    crl: Path
    untrusted_ca_cert: Path
    untrusted_vtn: CertFiles
    untrusted_ven: CertFiles

    @property
    def ven(self) -> CertFiles:
        """The first trusted VEN, for tests that need just one."""
        return self.vens[0]

    def server_context(
        self,
        *,
        vtn: CertFiles | None = None,
        ca: Path | None = None,
        profile: TlsProfile = TlsProfile.TLS13,
        crl: Path | None = None,
    ) -> ssl.SSLContext:
        """A VTN server context (default: the trusted VTN, trusting the trusted CA)."""
        chosen = vtn or self.vtn
        return server_context(
            cert=chosen.cert, key=chosen.key, ca=ca or self.ca_cert, profile=profile, crl=crl
        )

    def client_context(
        self,
        *,
        ven: CertFiles | None = None,
        ca: Path | None = None,
        profile: TlsProfile = TlsProfile.TLS13,
    ) -> ssl.SSLContext:
        """A VEN client context (default: the first trusted VEN, trusting the trusted CA)."""
        chosen = ven or self.ven
        return client_context(
            cert=chosen.cert, key=chosen.key, ca=ca or self.ca_cert, profile=profile
        )


def _files(issued: IssuedCertificate, directory: Path) -> CertFiles:
    cert, key = issued.write(directory)
    return CertFiles(
        name=issued.name,
        cert=cert,
        key=key,
        cert_pem=issued.cert_pem,
        fingerprint=issued.fingerprint,
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    trusted_dir = tmp_path_factory.mktemp("pki")
    untrusted_dir = tmp_path_factory.mktemp("pki-untrusted")
    authority = CertificateAuthority.create(common_name="crowdflex test CA")
    stranger = CertificateAuthority.create(common_name="untrusted test CA")
    ca_cert, _ = authority.write(trusted_dir)
    untrusted_ca_cert, _ = stranger.write(untrusted_dir)
    revoked = authority.issue("ven-revoked", Role.VEN)
    crl = trusted_dir / "crl.pem"
    crl.write_bytes(authority.revocation_list((revoked.certificate,)))
    return Pki(
        directory=trusted_dir,
        authority=authority,
        ca_cert=ca_cert,
        ca_fingerprint=authority.fingerprint,
        vtn=_files(authority.issue("vtn", Role.VTN), trusted_dir),
        vens=tuple(
            _files(authority.issue(f"ven-{index}", Role.VEN), trusted_dir)
            for index in range(_VEN_COUNT)
        ),
        revoked_ven=_files(revoked, trusted_dir),
        crl=crl,
        untrusted_ca_cert=untrusted_ca_cert,
        untrusted_vtn=_files(stranger.issue("vtn", Role.VTN), untrusted_dir),
        untrusted_ven=_files(stranger.issue("ven-untrusted", Role.VEN), untrusted_dir),
    )


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
