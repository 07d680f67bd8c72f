"""A TLS probe for the security tests: which protocol version and cipher a served VTN
(tests.kit.vtn) agrees with a given client context."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

__all__ = ["tls_probe"]


async def tls_probe(url: str, context: ssl.SSLContext) -> tuple[str, str]:
    """Open one TLS connection to the VTN behind ``url``; its (version, cipher)."""
    parts = urlsplit(url)
    async with asyncio.timeout(10):
        _reader, writer = await asyncio.open_connection(
            parts.hostname, parts.port, ssl=context, server_hostname=parts.hostname)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            return ssl_object.version(), ssl_object.cipher()[0]
        finally:
            writer.close()
