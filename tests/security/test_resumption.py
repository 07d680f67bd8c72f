"""A revoked VEN cannot come back by resuming a TLS 1.2 session (red team of issue 14).

A resumed handshake skips certificate verification, and OpenSSL keeps TLS 1.2 sessions in the
server's session-ID cache even with tickets off; Python's ``ssl`` cannot switch that cache off.
So a VEN that held a session from before the CRL revoked it could reconnect by resuming it, past
the fresh list. The VTN (served as deployed, ``openadr-tls1.2`` profile, a CRL file) checks the
certificate of every resumed session against the CRL file as it is now before admitting it.
Blocking client sockets on worker threads: asyncio's streams cannot offer a session to resume.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from schemas import Poll
from schemas.identity import TlsProfile
from tests.kit.vtn import served_vtn, vtn_config
from tests.vtn.harness import CODEC
from vtn.app import server_ssl_context

_TIMEOUT_S = 10.0


def _poll(url: str, context: ssl.SSLContext, session: ssl.SSLSession | None
          ) -> tuple[bytes, ssl.SSLSession | None, bool]:
    """One oadrPoll on a new connection, offering ``session``; (what came back -- b"" when the
    VTN closed the connection or refused the handshake --, the session, whether it resumed)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    body = CODEC.encode(Poll(ven_id="resumed"))
    head = (f"POST {parts.path}/OadrPoll HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
            f"application/xml\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection((host, port), timeout=_TIMEOUT_S) as raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=host, session=session)
        except (ssl.SSLError, OSError):
            return b"", None, False
        with tls:
            received = b""
            try:
                tls.sendall(head.encode("latin-1") + body)
                while chunk := tls.recv(65536):
                    received += chunk
            except (ssl.SSLError, OSError):
                pass  # closed by the VTN
            return received, tls.session, tls.session_reused


async def test_a_resumed_session_does_not_outlive_a_revocation(pki, tmp_path: Path) -> None:
    """Tried: two VENs poll over TLS 1.2 and each resumes its session once (the VTN resumes
    them: the test would prove nothing otherwise). The CRL file then revokes the first. Its
    resumed session is closed before any HTTP is answered, and a fresh handshake is refused;
    the other VEN's resumed session is still served. Was: the revoked VEN's resumed session
    was served 200."""
    crl = tmp_path / "crl.pem"
    shutil.copy(pki.crl, crl)
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}", tls_crl=crl,
                        tls_profile=TlsProfile.OPENADR_TLS12)
    revoked, kept = (pki.client_context(ven=ven, profile=TlsProfile.OPENADR_TLS12)
                     for ven in pki.vens[:2])
    async with served_vtn(config) as vtn:
        async with asyncio.timeout(4 * _TIMEOUT_S):
            sessions = {}
            for context in (revoked, kept):
                reply, session, _ = await asyncio.to_thread(_poll, vtn.url, context, None)
                assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
                reply, _, resumed = await asyncio.to_thread(_poll, vtn.url, context, session)
                assert resumed and reply.startswith(b"HTTP/1.1 200"), reply[:100]
                sessions[id(context)] = session
            crl.write_bytes(pki.authority.revocation_list(
                (x509.load_pem_x509_certificate(pki.vens[0].cert_pem),)))
            reply, _, _ = await asyncio.to_thread(_poll, vtn.url, revoked, sessions[id(revoked)])
            assert reply == b""
            reply, _, _ = await asyncio.to_thread(_poll, vtn.url, revoked, None)
            assert reply == b""
            reply, _, resumed = await asyncio.to_thread(_poll, vtn.url, kept, sessions[id(kept)])
            assert resumed and reply.startswith(b"HTTP/1.1 200"), reply[:100]


def test_renegotiation_is_off_on_every_served_context(pki, tmp_path: Path) -> None:
    """The Listening socket row's "TLS 1.2 renegotiation is off": a connection's certificate
    cannot change after the peer was identified. Python's client cannot ask for a renegotiation,
    so this checks the option on the contexts the VTN serves with, with and without a CRL."""
    crl = tmp_path / "crl.pem"
    shutil.copy(pki.crl, crl)
    for extra in ({}, {"tls_crl": crl}):
        config = vtn_config(pki, "sqlite://", tls_profile=TlsProfile.OPENADR_TLS12_OR_TLS13,
                            **extra)
        assert server_ssl_context(config).options & ssl.OP_NO_RENEGOTIATION
