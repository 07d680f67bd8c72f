"""Fixtures for the live conformance suite: a PKI per key type, crowdflex's VTN with its admin API.

``key_pki(directory, key_type)`` mints a CA, a VTN and a VEN certificate of one key type (EC P-256
or RSA) into a temporary directory; :func:`crowdflex_vtn` serves crowdflex's VTN over mutual TLS on
127.0.0.1 port 0 with a SQLite file, and its admin API on another port 0, the operator's way in.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from devpki import CertificateAuthority, KeyType, Role
from schemas.identity import TlsProfile
from tests.kit.vtn import RunningVtn, running_vtn
from vtn.admin import create_admin_app
from vtn.app import SERVICES
from vtn.tls import server_context

ADMIN_TOKEN = "conformance-admin-token-0123456789"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pair:
    cert: Path
    key: Path
    fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPki:
    """What :func:`tests.kit.vtn.running_vtn` reads of a PKI, for one key type."""

    ca_cert: Path
    vtn: Pair
    ven: Pair
    profile: TlsProfile

    def server_context(self) -> ssl.SSLContext:
        return server_context(cert=self.vtn.cert, key=self.vtn.key, ca=self.ca_cert,
                              profile=self.profile)


def key_pki(directory: Path, key_type: KeyType,
            profile: TlsProfile = TlsProfile.OPENADR_TLS12_OR_TLS13) -> KeyPki:
    authority = CertificateAuthority.create(common_name=f"conformance {key_type} CA",
                                            key_type=key_type)
    ca_cert, _ = authority.write(directory)

    def pair(name: str, role: Role) -> Pair:
        issued = authority.issue(name, role, key_type=key_type)
        cert, key = issued.write(directory)
        return Pair(cert=cert, key=key, fingerprint=issued.fingerprint)

    return KeyPki(ca_cert=ca_cert, vtn=pair("vtn", Role.VTN), ven=pair("ven", Role.VEN),
                  profile=profile)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedVtn:
    vtn: RunningVtn
    admin_url: str


@asynccontextmanager
async def crowdflex_vtn(pki: KeyPki, directory: Path) -> AsyncIterator[ServedVtn]:
    """crowdflex's VTN (SQLite in ``directory``) and its admin API, both on port 0."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{directory / 'vtn.db'}",  # type: ignore[arg-type]
                           tls_profile=pki.profile) as vtn:
        runner = web.AppRunner(create_admin_app(lambda: vtn.app[SERVICES], token=ADMIN_TOKEN))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield ServedVtn(vtn=vtn, admin_url=f"http://127.0.0.1:{runner.addresses[0][1]}")
        finally:
            await runner.cleanup()
