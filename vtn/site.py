"""The listening socket of a VTN: aiohttp's TCP site with two limits a public VTN needs.

- **TLS handshake deadline** *(config: ``tls_handshake_timeout_s``)*: a peer that opens a TCP
  connection and never finishes the handshake is dropped after this long (asyncio's default is
  60 s, long enough for a few thousand idle sockets to pin memory and file descriptors).
- **Open-connection cap** *(config: ``max_connections``)*: with that many established
  connections, a new one is closed as soon as its handshake completes, before any HTTP is read.
  VENs keep their connection alive (docs/architecture.md#where-the-time-goes), so the cap is on VENs
  connected at once, not on request rate (that is :mod:`vtn.limits`). Connections still handshaking
  are bounded by the
  deadline above, not by the cap.

Invariants: nothing here reads a request; a refused connection never reaches the application.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web

from vtn.app import VtnConfig, server_ssl_context

__all__ = ["VtnSite", "vtn_site"]

log = logging.getLogger(__name__)


class _Refused(asyncio.Protocol):
    """Closes the connection as soon as it is made: the VTN is at its connection cap."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class VtnSite(web.TCPSite):
    """``web.TCPSite`` plus a TLS handshake deadline and a cap on established connections."""

    __slots__ = ("_handshake_timeout_s", "_max_connections", "refused")

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *,
                 ssl_context: ssl.SSLContext | None, handshake_timeout_s: float = 10.0,
                 max_connections: int | None = 10_000, backlog: int = 1024,
                 reuse_port: bool = False) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog,
                         reuse_port=reuse_port)  # SO_REUSEPORT: worker processes share the port
        self._handshake_timeout_s = handshake_timeout_s
        self._max_connections = max_connections
        self.refused = 0  # connections closed at the cap, for operators and tests

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        cap = self._max_connections

        def protocol() -> asyncio.BaseProtocol:
            open_now = len(server.connections) if cap is not None else 0
            if cap is not None and open_now >= cap:
                self.refused += 1
                log.warning("connection refused: %d open, the cap is %d", open_now, cap)
                return _Refused()
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._handshake_timeout_s if self._ssl_context else None)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def vtn_site(runner: web.BaseRunner, config: VtnConfig, *, backlog: int = 1024,
             reuse_port: bool = False) -> VtnSite:
    """The mutual-TLS site for ``config`` (host, port, certificates and both limits);
    ``backlog`` is the listen queue for connections not yet accepted; ``reuse_port`` binds
    with SO_REUSEPORT (``crowdflex vtn --workers``)."""
    return VtnSite(runner, config.host, config.port, ssl_context=server_ssl_context(config),
                   handshake_timeout_s=config.tls_handshake_timeout_s,
                   max_connections=config.max_connections, backlog=backlog,
                   reuse_port=reuse_port)
