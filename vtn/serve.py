"""A VTN served as a deployment serves it: the app on its mutual-TLS listener
(:func:`vtn.site.vtn_site`) and, when enabled, the admin API with the operations endpoints
(:mod:`vtn.ops`) on the admin port. ``crowdflex vtn`` and each of its workers run this.

>>> async with serve_vtn(config) as served:                    # doctest: +SKIP
...     print(served.port, served.admin_port)

Invariants: the database is opened and migrated before either port listens; leaving the block
closes the admin port first, then the VEN port, then the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from schemas import utc_now
from vtn.admin import create_admin_app
from vtn.app import SERVICES, create_app
from vtn.ops import ops_routes
from vtn.settings import VtnConfig
from vtn.site import vtn_site

__all__ = ["Served", "serve_vtn"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    """The ports actually bound (the config may say 0); ``admin_port`` None: no admin API."""

    app: web.Application
    port: int
    admin_port: int | None


@asynccontextmanager
async def serve_vtn(config: VtnConfig, *, reuse_port: bool = False,
                    clock: Callable[[], datetime] = utc_now) -> AsyncIterator[Served]:
    """Serve ``config`` until the block ends; ``reuse_port``: bind the VEN port with
    SO_REUSEPORT, so several worker processes share it (the kernel spreads connections)."""
    if config.admin_enabled and config.admin_token is None:
        raise ValueError("the admin API needs an admin token (or switch it off)")
    app = create_app(config, clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()  # opens and migrates the database
    runners = [runner]
    try:
        await vtn_site(runner, config, reuse_port=reuse_port).start()
        admin_port = None
        if config.admin_enabled:
            assert config.admin_token is not None
            admin = web.AppRunner(create_admin_app(
                lambda: app[SERVICES], token=config.admin_token,
                public=ops_routes(app, lambda: runner.server)))
            runners.append(admin)
            await admin.setup()
            await web.TCPSite(admin, config.admin_host, config.admin_port).start()
            admin_port = _bound_port(admin)
        yield Served(app=app, port=_bound_port(runner), admin_port=admin_port)
    finally:
        for each in reversed(runners):
            await each.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])
