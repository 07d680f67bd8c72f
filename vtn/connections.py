"""The VTN's established connections, by the fingerprint of the client certificate on each.

:class:`vtn.site.VtnSite` admits every connection here once its TLS handshake is done, before any
HTTP is read; the application closes them here when a VEN is evicted
(:func:`vtn.services.registration.evict`) or its certificate is revoked (:mod:`vtn.app`).

- **Per-certificate cap** *(config: ``max_connections_per_peer``)*: one certificate may hold at
  most that many connections at once, so a single VEN cannot take every slot of
  ``max_connections``. A trusted proxy's certificate (``trusted_proxy_fingerprints``) carries many
  VENs and is exempt.
- **Resumed sessions** *(with ``tls_crl``)*: a resumed TLS handshake skips certificate
  verification, and OpenSSL keeps TLS 1.2 sessions in its server cache even with tickets off
  (Python cannot switch that cache off), so the certificate of a resumed session is checked
  against the revocation lists as they are now (``revoked``) and refused if they list it.

Invariants: the table holds transports only (no request state); a transport that is closing no
longer counts, and an empty entry is forgotten, so the table never outgrows the open connections
by more than the entries swept lazily; nothing here reads or writes a socket except ``close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from schemas.tls import peer_fingerprint

__all__ = ["Connections"]


class Connections:
    """Open connections by peer fingerprint; ``refused`` counts admissions over the cap."""

    __slots__ = ("_by_peer", "_exempt", "_per_peer", "_revoked", "_sweep_at", "refused")

    def __init__(self, *, per_peer: int | None = 16,
                 exempt: frozenset[str] = frozenset(),
                 revoked: Callable[[bytes], bool] | None = None) -> None:
        if per_peer is not None and per_peer < 1:
            raise ValueError("max_connections_per_peer must be at least 1 (or None for no cap)")
        self._per_peer = per_peer
        self._revoked = revoked  # whether the current lists revoke a certificate (DER)
        self._exempt = frozenset(f.upper() for f in exempt)
        # a tuple, not a set: one connection per certificate is the rule (48 bytes, not 216)
        self._by_peer: dict[str, tuple[asyncio.BaseTransport, ...]] = {}
        self._sweep_at = 64
        self.refused = 0

    def admit(self, transport: asyncio.BaseTransport) -> str | None:
        """Record ``transport`` and answer None; or, recording nothing, why it is refused: its
        certificate already holds ``per_peer`` open connections, or it resumed a session whose
        certificate is revoked."""
        fingerprint = peer_fingerprint(transport)
        if fingerprint is None:
            return None  # no certificate: nothing to count it against
        if self._revoked is not None and _resumed(transport):
            der = _peer_der(transport)
            if der is None or self._revoked(der):
                return "resumed session of a revoked certificate"
        held = self._open(fingerprint)
        if (self._per_peer is not None and fingerprint.upper() not in self._exempt
                and len(held) >= self._per_peer):
            self.refused += 1
            return "over max_connections_per_peer"
        self._by_peer[fingerprint] = (*held, transport)
        if len(self._by_peer) >= self._sweep_at:
            self._sweep()
        return None

    def count(self, fingerprint: str) -> int:
        """How many connections the certificate holds open now."""
        return len(self._open(fingerprint))

    def close_peer(self, fingerprint: str) -> int:
        """Close every connection of the certificate; how many were open."""
        held = self._open(fingerprint)
        self._by_peer.pop(fingerprint, None)
        for transport in held:
            transport.close()
        return len(held)

    def close_where(self, condemned: Callable[[bytes], bool]) -> int:
        """Close every connection whose peer certificate (DER) ``condemned`` accepts."""
        closed = 0
        for fingerprint in list(self._by_peer):
            held = self._open(fingerprint)
            der = _peer_der(held[0]) if held else None
            if der is not None and condemned(der):
                closed += self.close_peer(fingerprint)
        return closed

    def _open(self, fingerprint: str) -> tuple[asyncio.BaseTransport, ...]:
        held = self._by_peer.get(fingerprint)
        if held is None:
            return ()
        still = tuple(t for t in held if not t.is_closing())
        if not still:
            del self._by_peer[fingerprint]
        elif len(still) < len(held):
            self._by_peer[fingerprint] = still
        return still

    def _sweep(self) -> None:
        for fingerprint in list(self._by_peer):
            self._open(fingerprint)
        self._sweep_at = max(64, 2 * len(self._by_peer))


def _peer_der(transport: asyncio.BaseTransport) -> bytes | None:
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return der or None


def _resumed(transport: asyncio.BaseTransport) -> bool:
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object is not None and bool(ssl_object.session_reused)
