"""A VTN served exactly as a deployment serves it: ``create_app(config)`` on the
:func:`vtn.site.vtn_site` listener, whose TLS context is ``server_ssl_context(config)`` (so CRL
reloading, the TLS profile and the connection limits come from config), on 127.0.0.1 port 0.
The raw VEN client of :mod:`tests.vtn.harness` talks to it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from schemas import SERVICE_PREFIX
from tests.vtn.harness import RunningVtn
from vtn.app import create_app
from vtn.settings import VtnConfig
from vtn.site import vtn_site

__all__ = ["config_for", "served_vtn", "tls_probe"]


def config_for(pki: Any, storage_url: str, **overrides: Any) -> VtnConfig:
    values: dict[str, Any] = {
        "storage_url": storage_url, "tls_cert": pki.vtn.cert, "tls_key": pki.vtn.key,
        "tls_ca": pki.ca_cert, "poll_frequency": timedelta(seconds=1), "port": 0,
    }
    values.update(overrides)
    return VtnConfig(**values)


@asynccontextmanager
async def served_vtn(config: VtnConfig, *,
                     clock: Callable[[], datetime] | None = None) -> AsyncIterator[RunningVtn]:
    app = create_app(config, clock=clock) if clock is not None else create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = vtn_site(runner, replace(config, host="127.0.0.1", port=0))
    await site.start()
    try:
        yield RunningVtn(url=f"https://127.0.0.1:{site.port}{SERVICE_PREFIX}", app=app)
    finally:
        await runner.cleanup()


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
