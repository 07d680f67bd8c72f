"""TLS as the OpenADR 2.0b profile states it: context settings and the peer's fingerprint.

One place for what both ends of a link need (``vtn`` and ``ven`` never import each other): a VTN
serves and, for push, calls; a VEN calls and, for push, serves. Every context verifies its peer
against the configured CA; a server context demands a client certificate (``CERT_REQUIRED``).
TLS versions and suites follow :class:`schemas.identity.TlsProfile`: TLS 1.3 only by default;
TLS 1.2 restricted to the two OpenADR 2.0b suites when certification or old peers need it.
Configuring an ``ssl.SSLContext`` is not I/O; nothing here opens a socket.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from .identity import OPENADR_TLS12_CIPHERS, TlsProfile, certificate_fingerprint

__all__ = ["apply_profile", "client_context", "peer_fingerprint", "server_context"]

StrPath = str | os.PathLike[str]


def apply_profile(context: ssl.SSLContext, profile: TlsProfile) -> None:
    """Restrict ``context`` to the versions and TLS 1.2 suites ``profile`` allows; no TLS 1.2
    renegotiation, so a connection's peer certificate is fixed once the handshake is done."""
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_2 if profile.allows_tls12 else ssl.TLSVersion.TLSv1_3
    )
    context.maximum_version = (
        ssl.TLSVersion.TLSv1_3 if profile.allows_tls13 else ssl.TLSVersion.TLSv1_2
    )
    if profile.allows_tls12:
        # Affects TLS 1.2 only; TLS 1.3 suites are configured apart and stay at their defaults.
        context.set_ciphers(OPENADR_TLS12_CIPHERS)


def server_context(
    *,
    cert: StrPath,
    key: StrPath,
    ca: StrPath,
    profile: TlsProfile = TlsProfile.TLS13,
    crl: StrPath | None = None,
) -> ssl.SSLContext:
    """A server context that demands a client certificate chaining to ``ca``.

    ``cert`` may hold the chain (leaf first). With ``crl``, a client whose certificate that list
    revokes is refused during the handshake.

    No session tickets, TLS 1.3 or 1.2: a resumed session skips certificate verification (a
    ticket minted before a revocation would outlive it), a VEN keeps one connection alive (and an
    asyncio client cannot offer a session to resume), and writing OpenSSL's two TLS 1.3 tickets
    after every handshake cost a third of the server's handshake CPU (bench/README.md). So every
    TLS 1.3 connection is a full handshake with the client certificate verified. A TLS 1.2 one
    may not be: OpenSSL still resumes TLS 1.2 sessions from its server-side session-ID cache,
    which Python cannot switch off (:mod:`vtn.revocation` says what the VTN checks then).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=os.fspath(ca))
    context.verify_mode = ssl.CERT_REQUIRED
    context.num_tickets = 0
    context.options |= ssl.OP_NO_TICKET
    apply_profile(context, profile)
    context.load_cert_chain(certfile=os.fspath(cert), keyfile=os.fspath(key))
    if crl is not None:
        context.load_verify_locations(cafile=os.fspath(crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def client_context(
    *,
    cert: StrPath,
    key: StrPath,
    ca: StrPath,
    profile: TlsProfile = TlsProfile.TLS13,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca`` and presents ``cert``.

    Turn ``check_hostname`` off only when the server is pinned by fingerprint instead: the chain
    is still verified either way.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.fspath(ca))
    context.check_hostname = check_hostname
    apply_profile(context, profile)
    context.load_cert_chain(certfile=os.fspath(cert), keyfile=os.fspath(key))
    return context


def peer_fingerprint(source: ssl.SSLObject | ssl.SSLSocket | Any) -> str | None:
    """The OpenADR fingerprint of the certificate the peer presented, or ``None`` without one.

    ``source`` is an SSL object or socket, or a transport with ``get_extra_info`` (an asyncio or
    aiohttp transport) whose ``ssl_object`` is read; a plain-text transport yields ``None``.
    """
    get_extra_info = getattr(source, "get_extra_info", None)
    ssl_object = get_extra_info("ssl_object") if get_extra_info is not None else source
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return certificate_fingerprint(der) if der else None
