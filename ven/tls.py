"""The VEN's TLS: the client context for mutual TLS towards a VTN, and server pinning.

Owns how a VEN connects: it verifies the VTN's certificate against the configured CA and host
name, and presents its own certificate, whose OpenADR fingerprint the VTN binds to the venID
(OpenADR 2.0b profile, security section). A VEN may further pin its VTN by fingerprint
(:func:`server_fingerprint`).

TLS versions and suites follow :class:`schemas.identity.TlsProfile`, applied exactly as the VTN
does (``vtn`` and ``ven`` never import each other, so the few lines are mirrored).
"""

from __future__ import annotations

import asyncio
import os
import ssl

from schemas.identity import OPENADR_TLS12_CIPHERS, TlsProfile, certificate_fingerprint

__all__ = ["client_context", "server_fingerprint"]

StrPath = str | os.PathLike[str]


def _apply_profile(context: ssl.SSLContext, profile: TlsProfile) -> None:
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_2 if profile.allows_tls12 else ssl.TLSVersion.TLSv1_3
    )
    context.maximum_version = (
        ssl.TLSVersion.TLSv1_3 if profile.allows_tls13 else ssl.TLSVersion.TLSv1_2
    )
    if profile.allows_tls12:
        context.set_ciphers(OPENADR_TLS12_CIPHERS)


def client_context(
    *,
    cert: StrPath,
    key: StrPath,
    ca: StrPath,
    profile: TlsProfile = TlsProfile.TLS13,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client context that verifies the VTN against ``ca`` and presents ``cert``.

    Turn ``check_hostname`` off only when the VTN is pinned by fingerprint instead: the chain is
    still verified either way.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.fspath(ca))
    context.check_hostname = check_hostname
    _apply_profile(context, profile)
    context.load_cert_chain(certfile=os.fspath(cert), keyfile=os.fspath(key))
    return context


def server_fingerprint(
    source: ssl.SSLObject | ssl.SSLSocket | asyncio.BaseTransport,
) -> str | None:
    """The OpenADR fingerprint of the VTN's certificate on this connection, ``None`` if absent."""
    ssl_object = (
        source.get_extra_info("ssl_object") if isinstance(source, asyncio.BaseTransport) else source
    )
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return certificate_fingerprint(der) if der else None
