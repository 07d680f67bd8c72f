"""Message capture: every request and reply body that crosses a VTN's endpoints, one file each.

For audits (the privacy audit scans the aggregator->TSO link's captures) and for conformance
testers who want the exact bytes. Files are numbered in arrival order and named after the service
and direction, e.g. ``000007-EiReport-request.xml``; nothing is parsed or changed. A restarted VTN
numbers on after the highest file already in the folder, so no capture overwrites another.
Captures hold whatever the messages hold: :func:`purge_captures` deletes those older than a
retention age (by the time each file was written), :func:`purge_naming` those naming a value
that must go (an erased pseudonym).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

__all__ = ["capture_middleware", "purge_captures", "purge_naming"]

_NAME: Final = re.compile(r"(\d{6,})-[A-Za-z]+-(?:request|reply)\.xml")


def _captures(folder: Path) -> list[tuple[Path, int]]:
    found = []
    for path in folder.iterdir():
        match = _NAME.fullmatch(path.name)
        if match is not None and path.is_file():
            found.append((path, int(match.group(1))))
    return found


def capture_middleware(folder: Path) -> Middleware:
    """A middleware writing each OpenADR request and reply body to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    counter = itertools.count(max((n for _, n in _captures(folder)), default=0) + 1)

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


def purge_captures(folder: Path, before: datetime) -> int:
    """Delete the captures in ``folder`` written before ``before`` (timezone-aware); other files
    are left alone. Returns how many were deleted."""
    if before.utcoffset() is None:
        raise ValueError("the cutoff must be timezone-aware")
    if not folder.is_dir():
        return 0
    cutoff, deleted = before.timestamp(), 0
    for path, _ in _captures(folder):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def purge_naming(folder: Path, values: Iterable[str]) -> int:
    """Delete the captures in ``folder`` (requests and replies) whose bytes contain one of
    ``values``; other files are left alone. Returns how many were deleted."""
    needles = [v.encode() for v in values if v]
    if not needles or not folder.is_dir():
        return 0
    deleted = 0
    for path, _ in _captures(folder):
        body = path.read_bytes()
        if any(needle in body for needle in needles):
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted
