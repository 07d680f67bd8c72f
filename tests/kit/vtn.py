"""A VTN on loopback for tests: the test :class:`VtnConfig`, and the app served exactly as a
deployment serves it, on the :func:`vtn.site.vtn_site` listener (TLS context, CRL reloading, TLS
profile and connection limits all from the config) at 127.0.0.1, port 0.

- :func:`vtn_config`: the one builder of a test VtnConfig (session PKI, loopback, port 0).
- :class:`LoopbackVtn`: a served app that can stop listening and come back on the same port.
- :func:`served_vtn`: ``create_app(config)`` served for the length of a block, with its listener.
- :func:`running_vtn`: both at once, from the PKI, a storage URL and overrides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from schemas import SERVICE_PREFIX, utc_now
from tests.kit.pki import Pki
from vtn.app import SERVICES, create_app
from vtn.services import Handlers, ServiceContext
from vtn.settings import VtnConfig
from vtn.site import VtnSite, vtn_site

__all__ = ["LoopbackVtn", "RunningVtn", "running_vtn", "served_vtn", "vtn_config"]


def vtn_config(pki: Pki, storage_url: str, **overrides: Any) -> VtnConfig:
    """The session PKI's VTN certificate and trusted CA, port 0, a one-second poll frequency,
    ``storage_url``; ``overrides`` replace any of these or set any other field."""
    values: dict[str, Any] = {
        "storage_url": storage_url, "tls_cert": pki.vtn.cert, "tls_key": pki.vtn.key,
        "tls_ca": pki.ca_cert, "poll_frequency": timedelta(seconds=1), "port": 0,
    }
    values.update(overrides)
    return VtnConfig(**values)


@dataclass(slots=True, kw_only=True)
class LoopbackVtn:
    """An app on its VTN listener at 127.0.0.1; :meth:`refuse` stops listening and drops every
    open connection, :meth:`resume` listens again on the same port."""

    runner: web.AppRunner
    config: VtnConfig
    port: int = 0
    site: VtnSite | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, app: web.Application, config: VtnConfig, *, port: int = 0
                    ) -> LoopbackVtn:
        """Set ``app`` up (its startup opens the database) and listen on ``port`` (0: any)."""
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        served = cls(runner=runner, config=replace(config, host="127.0.0.1"), port=port)
        await served.resume()
        return served

    async def resume(self) -> None:
        self.site = vtn_site(self.runner, replace(self.config, port=self.port))
        await self.site.start()
        self.port = int(self.runner.addresses[0][1])

    async def refuse(self) -> None:
        assert self.site is not None
        await self.site.stop()
        self.site = None
        assert self.runner.server is not None
        await self.runner.server.shutdown(1.0)

    async def close(self) -> None:
        await self.runner.cleanup()


@dataclass(frozen=True, slots=True)
class RunningVtn:
    """A served VTN: its service URL (``https://127.0.0.1:PORT/OpenADR2/Simple/2.0b``), app and
    listener (its connection counts: ``refused``, ``pending_handshakes``)."""

    url: str
    app: web.Application
    site: VtnSite

    @property
    def ctx(self) -> ServiceContext:
        return self.app[SERVICES]


@asynccontextmanager
async def served_vtn(config: VtnConfig, *, handlers: Handlers | None = None,
                     clock: Callable[[], datetime] = utc_now) -> AsyncIterator[RunningVtn]:
    """``create_app(config)`` served on loopback until the block ends."""
    app = create_app(config, handlers=handlers, clock=clock)
    served = await LoopbackVtn.start(app, config)
    assert served.site is not None
    try:
        yield RunningVtn(url=f"{served.url}{SERVICE_PREFIX}", app=app, site=served.site)
    finally:
        await served.close()


def running_vtn(pki: Pki, storage_url: str, *, handlers: Handlers | None = None,
                **overrides: Any) -> AbstractAsyncContextManager[RunningVtn]:
    """A VTN on :func:`vtn_config` ``(pki, storage_url, **overrides)``, served for a block."""
    return served_vtn(vtn_config(pki, storage_url, **overrides), handlers=handlers)
