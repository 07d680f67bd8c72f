"""The VTN's TLS: the server context for mutual TLS, and the peer identity it yields.

Owns how a VTN listens: every client must present a certificate that chains to the configured CA
(``CERT_REQUIRED``), optionally checked against a revocation list; the VEN is then known by the
OpenADR fingerprint of that certificate (:func:`peer_fingerprint`), which the services bind to its
venID (DESIGN section 2, step 2; OpenADR 2.0b profile, security section).

TLS versions and suites follow :class:`schemas.identity.TlsProfile`: TLS 1.3 only by default;
TLS 1.2 restricted to the two OpenADR 2.0b suites when certification or old peers need it.
"""

from __future__ import annotations

import asyncio
import os
import ssl

from schemas.identity import OPENADR_TLS12_CIPHERS, TlsProfile, certificate_fingerprint

__all__ = ["peer_fingerprint", "server_context"]

StrPath = str | os.PathLike[str]


def _apply_profile(context: ssl.SSLContext, profile: TlsProfile) -> None:
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

    ``cert`` may hold the VTN's chain (leaf first). With ``crl``, a client whose certificate that
    list revokes is refused during the handshake.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=os.fspath(ca))
    context.verify_mode = ssl.CERT_REQUIRED
    _apply_profile(context, profile)
    context.load_cert_chain(certfile=os.fspath(cert), keyfile=os.fspath(key))
    if crl is not None:
        context.load_verify_locations(cafile=os.fspath(crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def peer_fingerprint(
    source: ssl.SSLObject | ssl.SSLSocket | asyncio.BaseTransport,
) -> str | None:
    """The OpenADR fingerprint of the certificate the peer presented, or ``None`` without one.

    ``source`` is an SSL object or socket, or an asyncio transport (e.g. aiohttp's
    ``request.transport``) whose ``ssl_object`` is read; a plain-text transport yields ``None``.
    """
    ssl_object = (
        source.get_extra_info("ssl_object") if isinstance(source, asyncio.BaseTransport) else source
    )
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return certificate_fingerprint(der) if der else None
