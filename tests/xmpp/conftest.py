"""XMPP test fixtures: a real Prosody per test (:mod:`tests.xmpp.server`), a crowdflex VTN
serving HTTP and XMPP at once on a SQLite file, and VENs that reach it over XMPP.

Every certificate comes from the session CA (``pki``); VENs beyond the session's four are minted
here (EC P-256, milliseconds each) into the test's own directory.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devpki import Role
from schemas.tls import client_context
from tests.kit.pki import CertFiles, Pki
from tests.kit.vtn import RunningVtn, running_vtn
from ven import Connection, Hooks, VenClient, VenSettings
from ven.xmpp import XmppLink
from vtn.app import XMPP
from vtn.settings import XmppSettings

from .server import XmppServer, require_prosody


@pytest.fixture
async def xmpp_server(pki: Pki, tmp_path: Path) -> AsyncIterator[XmppServer]:
    require_prosody()
    issued = pki.authority.issue("xmpp-server", Role.VTN, hosts=("localhost",))
    cert, key = issued.write(tmp_path)
    server = XmppServer(cert=cert, key=key, ca=pki.ca_cert)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass(frozen=True, slots=True)
class Ven:
    cert: CertFiles
    context: ssl.SSLContext


def mint_vens(pki: Pki, directory: Path, count: int, prefix: str = "xven") -> list[Ven]:
    """``count`` trusted VEN certificates of their own, with client contexts."""
    vens = []
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        issued = pki.authority.issue(f"{prefix}-{index}", Role.VEN)
        cert, key = issued.write(directory)
        files = CertFiles(name=issued.name, cert=cert, key=key, cert_pem=issued.cert_pem,
                          fingerprint=issued.fingerprint)
        vens.append(Ven(files, client_context(cert=cert, key=key, ca=pki.ca_cert)))
    return vens


@asynccontextmanager
async def xmpp_vtn(pki: Pki, server: XmppServer, storage_url: str, *,
                   reconnect_s: float = 5.0, request_timeout_s: float = 30.0,
                   max_sends_in_flight: int | None = None, sessions: int = 1,
                   **overrides: Any) -> AsyncIterator[RunningVtn]:
    """A VTN on HTTP (port 0) and on ``server``; ``max_sends_in_flight`` None keeps the default."""
    settings = XmppSettings(host="127.0.0.1", port=server.port, domain=server.domain,
                            connect_timeout_s=30.0, request_timeout_s=request_timeout_s,
                            reconnect_s=reconnect_s, sessions=sessions)
    if max_sends_in_flight is not None:
        settings = dataclasses.replace(settings, max_sends_in_flight=max_sends_in_flight)
    async with running_vtn(pki, storage_url, xmpp=settings, **overrides) as vtn:
        yield vtn


def link_for(vtn: RunningVtn, server: XmppServer, context: ssl.SSLContext, fingerprint: str,
             **options: Any) -> XmppLink:
    return XmppLink(host="127.0.0.1", port=server.port, domain=server.domain,
                    vtn_jid=vtn.app[XMPP].jid, fingerprint=fingerprint, ssl_context=context,
                    **options)


@asynccontextmanager
async def xmpp_ven(vtn: RunningVtn, server: XmppServer, ven: Ven, *,
                   on_event: Callable[..., Any] | None = None,
                   reconnect_s: float = 5.0) -> AsyncIterator[VenClient]:
    """A started :class:`VenClient` on an :class:`XmppLink` to ``vtn``, answering its payloads."""
    link = link_for(vtn, server, ven.context, ven.cert.fingerprint, reconnect_s=reconnect_s)
    async with VenClient(VenSettings(
            ven_name=ven.cert.name,
            connection=Connection(vtn_url=link.vtn_jid, ssl_context=None, link=link),
            hooks=Hooks(on_event=on_event))) as client:
        link.serve(client)
        yield client
