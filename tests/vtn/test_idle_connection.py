"""What a VEN's kept-alive connection holds while it is idle between requests.

A fleet's VENs keep their mutual-TLS connection open between polls, so whatever a connection keeps
after its reply is multiplied by every VEN connected. The connection tests post one oadrPoll on
a real mutual-TLS connection to a served VTN, read the reply, keep the connection open and look
at the server's side of it, on asyncio's event loop and on uvloop (the serving loop of
``crowdflex vtn``).
"""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import uvloop
from aiohttp import web

from schemas import Codec, Poll
from schemas.identity import certificate_fingerprint
from tests.kit.pki import Pki
from tests.kit.vtn import running_vtn
from tests.security.rawhttp import TO_AIOHTTP, request_head
from vtn.storage.records import VenRegistration

T = TypeVar("T")

LOOPS = [pytest.param(asyncio.new_event_loop, id="asyncio"),
         pytest.param(uvloop.new_event_loop, id="uvloop")]


def _on(loop_factory: Callable[[], asyncio.AbstractEventLoop],
        coroutine: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


async def _after_a_poll(pki: Pki, tmp_path: Path, look: Callable[[], T], *,
                       extra: str = "") -> T:
    """``look()`` while a connection that posted one poll (``extra`` header lines) and read its
    reply is open and idle."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}") as vtn:
        parts = urlsplit(vtn.url)
        reader, writer = await asyncio.open_connection(
            parts.hostname, parts.port, ssl=pki.client_context(), server_hostname=parts.hostname)
        try:
            body = Codec().encode(Poll(ven_id="ven-1"))
            async with asyncio.timeout(30):
                writer.write(request_head(vtn.url, "OadrPoll", len(body), extra=extra) + body)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200"), head
            gc.collect()
            return look()
        finally:
            writer.close()


def _open_handlers() -> list[web.RequestHandler]:
    return [each for each in gc.get_objects()
            if isinstance(each, web.RequestHandler) and each.transport is not None]


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_the_connection_keeps_no_decoded_peer_certificate(
        pki: Pki, tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """The event loop decodes the client certificate to a dict at the handshake and keeps it for
    the connection's life; the site empties that dict when it hands the connection to aiohttp.
    Fails too if a loop hands out a copy of the dict it keeps (emptying the copy frees nothing):
    the dict read here afterwards would not be empty. The certificate itself stays readable."""
    def look() -> tuple[object, str | None]:
        (handler,) = _open_handlers()
        assert handler.transport is not None
        ssl_object = handler.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        return (handler.transport.get_extra_info("peercert"),
                certificate_fingerprint(der) if der else None)

    decoded, fingerprint = _on(loop_factory, _after_a_poll(pki, tmp_path, look))
    assert decoded == {}
    assert fingerprint == pki.ven.fingerprint


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_the_last_reply_kept_by_the_connection_has_no_body_nor_headers(
        pki: Pki, tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """On aiohttp's path (a request the VTN's own path hands over), aiohttp's keep-alive loop
    still holds the connection's last response (this test also fails if it stops holding one:
    then the reply need not let go of anything); the reply has let go of its bytes and its
    headers."""
    kept = _on(loop_factory, _after_a_poll(pki, tmp_path, _responses, extra=TO_AIOHTTP))
    assert kept == [(None, 0)]


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_a_connection_on_the_vtn_s_own_path_keeps_no_reply(
        pki: Pki, tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """A plain request answered by the VTN's own HTTP path (vtn/fastpath.py) leaves no response
    object behind at all."""
    assert _on(loop_factory, _after_a_poll(pki, tmp_path, _responses)) == []


def _responses() -> list[tuple[object, int]]:
    return [(each.body, len(each.headers)) for each in gc.get_objects()
            if isinstance(each, web.Response)]


def test_a_connected_ven_s_fingerprint_and_shared_names_are_kept_once(pki: Pki) -> None:
    """Every table that knows a connected VEN by its certificate (the connection's, the
    identity's, the budgets', the poll index's registration) holds the same string, and a
    registration read from the database holds the profile and transport names every VEN
    shares, not copies of its own."""
    der = ssl.PEM_cert_to_DER_cert(pki.ven.cert_pem.decode())
    fingerprint = certificate_fingerprint(der)
    assert certificate_fingerprint(der) is fingerprint
    read = VenRegistration(  # as a database row gives them: strings made afresh
        ven_id="ven-1", registration_id="reg-1", fingerprint="".join(list(fingerprint)),
        ven_name="v", profile_name="".join(["2.0", "b"]),
        transport_name="".join(["simple", "Http"]), created_at=datetime.now(UTC))
    assert read.fingerprint is fingerprint
    default = VenRegistration(ven_id="ven-2", registration_id="reg-2", fingerprint="AA",
                              ven_name="w", created_at=datetime.now(UTC))
    assert read.profile_name is default.profile_name
    assert read.transport_name is default.transport_name
