"""Real mutual-TLS handshakes on loopback between vtn.tls server and ven.tls client contexts.

Each test starts an asyncio TLS server on 127.0.0.1 port 0 that answers one line: the fingerprint
of the client certificate it saw. Failures must surface as TLS errors on the client and must never
reach the server's handler.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from devpki import KeyType, Role
from schemas.identity import TlsProfile
from tests.kit.pki import Pki
from ven.tls import client_context, server_fingerprint
from vtn.app import server_ssl_context
from vtn.settings import VtnConfig
from vtn.tls import peer_fingerprint, server_context

_TIMEOUT = 5.0
# What a refused handshake may look like from the client, depending on when the alert arrives.
_REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)


@dataclass(frozen=True, slots=True, kw_only=True)
class Handshake:
    client_seen_by_server: str | None
    server_seen_by_client: str | None
    version: str
    cipher: str


async def _handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, *, server_hostname: str = "localhost"
) -> Handshake:
    """Connect once; return what each side saw. Raises what the client met if TLS fails."""
    handled: list[str | None] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fingerprint = peer_fingerprint(writer.transport)
        handled.append(fingerprint)
        writer.write(f"{fingerprint}\n".encode())
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        async with asyncio.timeout(_TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname=server_hostname
            )
            try:
                line = await reader.readuntil(b"\n")
            except BaseException:
                writer.close()
                assert handled == [], "the server handled a connection it should have refused"
                raise
            ssl_object = writer.get_extra_info("ssl_object")
            result = Handshake(
                client_seen_by_server=line.decode().strip(),
                server_seen_by_client=server_fingerprint(writer.transport),
                version=ssl_object.version(),
                cipher=ssl_object.cipher()[0],
            )
            writer.close()
            return result

async def test_trusted_vtn_and_ven_authenticate_each_other(
    pki: Pki, vtn_ssl_context: ssl.SSLContext, ven_ssl_context: ssl.SSLContext
) -> None:
    result = await _handshake(vtn_ssl_context, ven_ssl_context)
    assert result.client_seen_by_server == pki.ven.fingerprint
    assert result.server_seen_by_client == pki.vtn.fingerprint
    assert result.version == "TLSv1.3"


async def test_each_ven_is_told_apart_by_fingerprint(pki: Pki) -> None:
    seen = [
        (await _handshake(pki.server_context(), pki.client_context(ven=ven))).client_seen_by_server
        for ven in pki.vens
    ]
    assert seen == [ven.fingerprint for ven in pki.vens]
    assert len(set(seen)) == len(pki.vens)


async def test_ven_from_untrusted_ca_is_refused(pki: Pki) -> None:
    with pytest.raises(_REFUSED):
        await _handshake(pki.server_context(), pki.client_context(ven=pki.untrusted_ven))


async def test_ven_without_client_certificate_is_refused(pki: Pki) -> None:
    anonymous = ssl.create_default_context(cafile=pki.ca_cert)
    with pytest.raises(_REFUSED):
        await _handshake(pki.server_context(), anonymous)


async def test_revoked_ven_is_refused_when_a_crl_is_configured(pki: Pki) -> None:
    guarded = pki.server_context(crl=pki.crl)
    with pytest.raises(_REFUSED):
        await _handshake(guarded, pki.client_context(ven=pki.revoked_ven))
    ok = await _handshake(pki.server_context(crl=pki.crl), pki.client_context())
    assert ok.client_seen_by_server == pki.ven.fingerprint


async def test_ven_refuses_a_vtn_from_an_untrusted_ca(pki: Pki) -> None:
    impostor = pki.server_context(vtn=pki.untrusted_vtn)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(impostor, pki.client_context())


async def test_ven_checks_the_vtn_host_name(pki: Pki) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(pki.server_context(), pki.client_context(), server_hostname="vtn.example")


async def test_ven_may_pin_by_fingerprint_instead_of_host_name(pki: Pki) -> None:
    pinned = client_context(
        cert=pki.ven.cert, key=pki.ven.key, ca=pki.ca_cert, check_hostname=False
    )
    result = await _handshake(pki.server_context(), pinned, server_hostname="vtn.example")
    assert result.server_seen_by_client == pki.vtn.fingerprint


async def test_openadr_tls12_profile_negotiates_the_ecdsa_suite(pki: Pki) -> None:
    profile = TlsProfile.OPENADR_TLS12
    result = await _handshake(
        pki.server_context(profile=profile), pki.client_context(profile=profile)
    )
    assert (result.version, result.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-SHA256")
    assert result.client_seen_by_server == pki.ven.fingerprint


async def test_openadr_tls12_profile_negotiates_the_rsa_suite_with_rsa_keys(
    pki: Pki, tmp_path: Path
) -> None:
    vtn_cert, vtn_key = pki.authority.issue("vtn-rsa", Role.VTN, key_type=KeyType.RSA).write(
        tmp_path
    )
    ven = pki.authority.issue("ven-rsa", Role.VEN, key_type=KeyType.RSA)
    ven_cert, ven_key = ven.write(tmp_path)
    profile = TlsProfile.OPENADR_TLS12
    server = server_context(cert=vtn_cert, key=vtn_key, ca=pki.ca_cert, profile=profile)
    client = client_context(cert=ven_cert, key=ven_key, ca=pki.ca_cert, profile=profile)
    result = await _handshake(server, client)
    assert (result.version, result.cipher) == ("TLSv1.2", "AES128-SHA256")
    assert result.client_seen_by_server == ven.fingerprint


@pytest.mark.parametrize(
    ("client_profile", "version"),
    [(TlsProfile.TLS13, "TLSv1.3"), (TlsProfile.OPENADR_TLS12, "TLSv1.2")],
)
async def test_mixed_profile_serves_both_versions(
    pki: Pki, client_profile: TlsProfile, version: str
) -> None:
    server = pki.server_context(profile=TlsProfile.OPENADR_TLS12_OR_TLS13)
    result = await _handshake(server, pki.client_context(profile=client_profile))
    assert result.version == version


async def test_tls13_server_refuses_a_tls12_only_ven(pki: Pki) -> None:
    with pytest.raises(_REFUSED):
        await _handshake(
            pki.server_context(), pki.client_context(profile=TlsProfile.OPENADR_TLS12)
        )


async def test_plain_transport_has_no_peer_fingerprint() -> None:
    seen: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(peer_fingerprint(writer.transport))
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        async with asyncio.timeout(_TIMEOUT):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await seen is None
            writer.close()



def _connect_twice(port: int, client: ssl.SSLContext) -> tuple[bool, bool]:
    """Two connections, the second offering the first's session: (whether the server sent the
    first a session ticket, whether the second resumed). Blocking sockets on a worker thread:
    asyncio's streams cannot offer a session."""
    session: ssl.SSLSession | None = None
    had_ticket, resumed = False, False
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT) as raw, \
                client.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            assert tls.recv(1024).endswith(b"\n")  # tickets, if any, came before the line
            resumed = bool(tls.session_reused)
            if session is None:
                session = tls.session
                had_ticket = session is not None and session.has_ticket
    return had_ticket, resumed


@pytest.mark.parametrize("with_crl", [False, True], ids=["no-crl", "crl"])
@pytest.mark.parametrize("profile", [TlsProfile.TLS13, TlsProfile.OPENADR_TLS12],
                         ids=["tls13", "tls12"])
async def test_the_vtn_issues_no_session_tickets_so_every_connection_is_verified_in_full(
    pki: Pki, with_crl: bool, profile: TlsProfile
) -> None:
    """A VEN is sent no session ticket, TLS 1.3 or 1.2, so its next TLS 1.3 connection cannot
    resume and has its certificate verified again (schemas/tls.py: resumption would skip that
    check, and the tickets cost a third of the handshake's server CPU). Over TLS 1.2 the same
    client does resume, from OpenSSL's session-ID cache (SECURITY.md: that is why a resumed
    session's certificate is checked against the CRL, tests/security/test_resumption.py), which
    shows this client offers its session and the server would resume one it kept."""
    config = VtnConfig(tls_cert=pki.vtn.cert, tls_key=pki.vtn.key, tls_ca=pki.ca_cert,
                       tls_crl=pki.crl if with_crl else None, tls_profile=profile)
    seen: list[str | None] = []

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(peer_fingerprint(writer.transport))
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0,
                                          ssl=server_ssl_context(config))
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        had_ticket, resumed = await asyncio.to_thread(
            _connect_twice, port, pki.client_context(profile=profile))
    assert (had_ticket, resumed) == (False, profile is TlsProfile.OPENADR_TLS12)
    assert seen == [pki.ven.fingerprint] * 2
