"""Fixtures for the live conformance suite: a PKI per key type, crowdflex's VTN with its admin API.

``key_pki(directory, key_type)`` mints a CA, a VTN and a VEN certificate of one key type (EC P-256
or RSA) into a temporary directory (the VEN's also serves TLS on 127.0.0.1, for push), and an XMPP
server's (for ``localhost``); :func:`endless_xml` is the body of a node that answers without end;
:func:`crowdflex_vtn` serves crowdflex's VTN over mutual TLS on 127.0.0.1 port 0 with a SQLite
file, and its admin API on another port 0, the operator's way in.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp import web

from devpki import CertificateAuthority, KeyType, Role
from schemas.identity import TlsProfile
from tests.kit.vtn import RunningVtn, running_vtn
from tests.vtn.harness import LOOPBACK_PUSH
from vtn.admin import create_admin_app
from vtn.app import SERVICES
from vtn.tls import server_context

ADMIN_TOKEN = "conformance-admin-token-0123456789"

#: the two certificate kinds a certified node must take, each over the TLS it is used with
KEY_TYPES: Final = [pytest.param(KeyType.EC, TlsProfile.TLS13, id="ecc-tls1.3"),
                    pytest.param(KeyType.RSA, TlsProfile.OPENADR_TLS12, id="rsa-tls1.2")]


async def endless_xml(sent: list[int]) -> AsyncIterator[bytes]:
    """A body without end for a hostile node to answer with, 64 KiB at a time; ``sent[0]``
    counts what was handed to the server."""
    chunk = b"<a/>" * 16_384
    while True:
        sent[0] += len(chunk)
        yield chunk


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
    xmpp_server: Pair
    profile: TlsProfile

    def server_context(self) -> ssl.SSLContext:
        return server_context(cert=self.vtn.cert, key=self.vtn.key, ca=self.ca_cert,
                              profile=self.profile)


def key_pki(directory: Path, key_type: KeyType,
            profile: TlsProfile = TlsProfile.OPENADR_TLS12_OR_TLS13) -> KeyPki:
    authority = CertificateAuthority.create(common_name=f"conformance {key_type} CA",
                                            key_type=key_type)
    ca_cert, _ = authority.write(directory)

    def pair(name: str, role: Role, hosts: tuple[str, ...] | None = None) -> Pair:
        issued = authority.issue(name, role, key_type=key_type, hosts=hosts)
        cert, key = issued.write(directory)
        return Pair(cert=cert, key=key, fingerprint=issued.fingerprint)

    return KeyPki(ca_cert=ca_cert, vtn=pair("vtn", Role.VTN),
                  ven=pair("ven", Role.VEN, ("127.0.0.1",)),
                  xmpp_server=pair("xmpp-server", Role.VTN, ("localhost",)), profile=profile)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedVtn:
    vtn: RunningVtn
    admin_url: str


@asynccontextmanager
async def crowdflex_vtn(pki: KeyPki, directory: Path, **overrides: Any
                        ) -> AsyncIterator[ServedVtn]:
    """crowdflex's VTN (SQLite in ``directory``) and its admin API, both on port 0; it pushes to
    loopback addresses (the harness VEN's receiver in push mode)."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{directory / 'vtn.db'}",  # type: ignore[arg-type]
                           push_allow_private_targets=LOOPBACK_PUSH, tls_profile=pki.profile,
                           **overrides) as vtn:
        runner = web.AppRunner(create_admin_app(lambda: vtn.app[SERVICES], token=ADMIN_TOKEN))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield ServedVtn(vtn=vtn, admin_url=f"http://127.0.0.1:{runner.addresses[0][1]}")
        finally:
            await runner.cleanup()
