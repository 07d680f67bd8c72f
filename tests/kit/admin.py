"""The admin API of a running VTN on loopback with its bearer token, and a VEN's report offer
to give it something to list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web

from schemas import (
    ReadingType,
    RegisterReport,
    Report,
    ReportDescription,
    ReportType,
)
from vtn.admin import create_admin_app
from vtn.app import SERVICES

__all__ = ["TOKEN", "admin_client", "offer"]

TOKEN = "test-admin-token-0123456789"


def offer(spec: str, *r_ids: str) -> RegisterReport:
    """A VEN's oadrRegisterReport offering one report (not auto-subscribed) with ``r_ids``."""
    return RegisterReport(request_id="offer", reports=(Report(
        report_request_id="0", report_specifier_id=spec, created_date_time=datetime.now(UTC),
        report_name="x-PANEL", duration=timedelta(hours=1),
        descriptions=tuple(ReportDescription(r_id=r, report_type=ReportType.USAGE,
                                             reading_type=ReadingType.DIRECT_READ)
                           for r in r_ids)),))


@asynccontextmanager
async def admin_client(vtn_app: web.Application, token: str = TOKEN
                       ) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runner = web.AppRunner(create_admin_app(lambda: vtn_app[SERVICES], token=TOKEN))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            yield session, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
