"""What a push receiver answers cannot steer the VTN (red-team review of issue 14, finding 5).

A VEN chooses its push receiver, so the receiver is hostile too. Real VTN and receiver, mutual TLS
on loopback; the receiver presents the VEN's own certificate, so the pin lets it in.

- A redirect (307 keeps the method and body) to a plain-http service on an address the VTN must
  not push to: the VTN follows no redirect, so that service sees nothing (was: aiohttp followed
  it, and an IP literal in ``Location`` never reached the resolver that checks addresses).
- A reply body that never ends: the VTN reads at most ``max_body_bytes`` of it, then drops the
  connection (was: read until ``push_timeout_s``, however many bytes that was).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from tests.kit.vtn import running_vtn
from tests.vtn.harness import logged, push_receiver, push_ven_tls, raw_ven

_RECEIVER_NET = ("127.0.0.1/32",)  # the receiver's address; 127.0.0.2 stays forbidden


def _storage(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'vtn.db'}"


@asynccontextmanager
async def _push_failures(text: str = "push to") -> AsyncIterator[asyncio.Event]:
    """Set when vtn.push logs a line containing ``text``."""
    with logged("vtn.push", text) as seen:
        yield seen


@asynccontextmanager
async def _internal_service(hits: list[str]) -> AsyncIterator[str]:
    """A plain-http service on 127.0.0.2 (not a permitted push target) recording every request."""
    async def record(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path} {len(await request.read())} bytes")
        return web.Response(text="internal")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.2:{port}"
    finally:
        await runner.cleanup()


async def test_a_push_receivers_redirect_is_not_followed(pki, tmp_path: Path) -> None:
    """Tried: the receiver answers every push with 307 to an internal plain-http service."""
    hits: list[str] = []
    tls = push_ven_tls(pki, tmp_path, "push-redirect")
    redirected = asyncio.Event()
    async with _internal_service(hits) as internal:
        async def redirect(_request: web.Request) -> web.Response:
            redirected.set()
            raise web.HTTPTemporaryRedirect(f"{internal}/steal")

        async with push_receiver(tls.server, redirect) as address, _push_failures() as failed, \
                running_vtn(pki, _storage(tmp_path), push_allow_private_targets=_RECEIVER_NET,
                            push_retry_s=3600.0) as vtn, raw_ven(vtn.url, tls.client) as ven:
            await ven.register("redirecting", http_pull_model=False, transport_address=address)
            async with asyncio.timeout(20):
                await redirected.wait()
                await failed.wait()
            assert hits == []
            assert await vtn.ctx.storage.outbox.pending_count(tls.fingerprint) == 1


async def test_a_push_reply_that_never_ends_is_cut_at_the_body_cap(pki, tmp_path: Path) -> None:
    """Tried: the receiver answers 200 and streams its body forever, with a push timeout of an
    hour. The VTN stops reading past ``max_body_bytes`` (64 KiB here), counts the push as failed
    and drops the connection, so the receiver's writes fail (what it managed to write before
    then sits in loopback's socket buffers, megabytes, and says nothing about the VTN)."""
    tls = push_ven_tls(pki, tmp_path, "push-stream")
    cut = asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "application/xml"})
        await reply.prepare(request)
        chunk = b"<a>" + b"x" * 65_533
        try:
            while True:
                await reply.write(chunk)
        finally:
            cut.set()

    async with push_receiver(tls.server, stream) as address, \
            _push_failures("longer than 65536 bytes") as failed, \
            running_vtn(pki, _storage(tmp_path), push_allow_private_targets=_RECEIVER_NET,
                        push_timeout_s=3600.0, push_retry_s=3600.0,
                        max_body_bytes=64 * 1024) as vtn, raw_ven(vtn.url, tls.client) as ven:
        await ven.register("streaming", http_pull_model=False, transport_address=address)
        async with asyncio.timeout(30):
            await failed.wait()
            await cut.wait()
        assert await vtn.ctx.storage.outbox.pending_count(tls.fingerprint) == 1
