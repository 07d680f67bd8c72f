"""Message capture: every request and reply body that crosses a VTN's endpoints, one file each.

For audits (the privacy audit scans the aggregator->TSO link's captures) and for conformance
testers who want the exact bytes. Files are numbered in arrival order and named after the service
and direction, e.g. ``000007-EiReport-request.xml``; nothing is parsed or changed.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

__all__ = ["capture_middleware"]


def capture_middleware(folder: Path) -> Middleware:
    """A middleware writing each OpenADR request and reply body to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    counter = itertools.count(1)

    @web.middleware
    async def capture(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        response = await handler(request)
        service = request.path.rstrip("/").rsplit("/", 1)[-1]
        number = next(counter)
        (folder / f"{number:06d}-{service}-request.xml").write_bytes(body)
        if isinstance(response, web.Response) and response.body is not None:
            reply = response.body if isinstance(response.body, bytes) else b""
            (folder / f"{number:06d}-{service}-reply.xml").write_bytes(reply)
        return response

    return capture
