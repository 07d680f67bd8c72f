"""Where the VTN may push: the checks on a VEN's ``oadrTransportAddress`` (OpenADR 2.0b profile
9.1, simpleHttp push).

A VEN chooses its transport address and the VTN POSTs to it, so an unchecked address makes the
VTN a proxy into its own network (SSRF): plain http without mutual TLS, loopback and internal
services, a path and query of the VEN's choosing. The rules, checked when a VEN registers for
push (:mod:`vtn.services.registration`) and again before every push (:mod:`vtn.push`):

- ``https`` only, with a host and nothing the VTN does not build itself: no user info, query or
  fragment (the VTN appends the service name to the path; a ``?x=`` would swallow it), and not
  ``localhost``. Refused at registration with 454.
- The host must be a global unicast address (``ipaddress``'s ``is_global``; an IPv6 address
  that carries an IPv4 one -- mapped, translated, compatible, 6to4, NAT64 -- is judged by that
  IPv4 address, and local-use NAT64 is refused): loopback, private, link-local, shared,
  reserved, documentation and multicast ranges are refused (451 at registration) unless a
  configured network (``[push] allow_private_targets``, default none) holds the address. A
  host name is checked on every connection, after it is resolved (:class:`TargetResolver`), so
  DNS cannot smuggle in an address the rules refuse.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from schemas import InvalidData, NotAllowed

__all__ = ["PushTargets", "TargetResolver"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class PushTargets:
    """The rules above; ``allowed`` are the non-global networks the VTN may push into anyway."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str]) -> PushTargets:
        """From CIDR texts such as ``"127.0.0.0/8"``; ValueError for one that is not."""
        return cls(tuple(ipaddress.ip_network(text, strict=False) for text in networks))

    def permits(self, address: str) -> bool:
        """Whether the VTN may connect to this IP address; an IPv6 address standing for an IPv4
        one (mapped, translated, compatible, 6to4, NAT64) is judged by the IPv4 address."""
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address):
            ip = _ipv4_inside(ip) or ip
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return True
        if ip in _LOCAL_NAT64:  # any IPv4 address a local translator chooses
            return False
        return ip.is_global and not ip.is_multicast

    def check_address(self, address: str) -> None:
        """Raise :class:`InvalidData` (454) for an address of the wrong shape and
        :class:`NotAllowed` (451) for an IP address the VTN must not push to."""
        try:
            parts = urlsplit(address)
            host, _port = parts.hostname, parts.port  # port: ValueError when out of range
        except ValueError as exc:
            raise InvalidData(f"oadrTransportAddress is not a URL: {exc}") from None
        if parts.scheme.lower() != "https":
            raise InvalidData("oadrTransportAddress must be an https URL: push uses mutual TLS")
        if parts.username is not None or parts.password is not None:
            raise InvalidData("oadrTransportAddress must not carry user info")
        if parts.query or parts.fragment or "?" in address or "#" in address:
            raise InvalidData("oadrTransportAddress must not carry a query or fragment: the VTN "
                              "appends the service name to its path")
        if not host:
            raise InvalidData("oadrTransportAddress has no host")
        if host == "localhost" or host.endswith(".localhost"):
            raise NotAllowed("oadrTransportAddress names localhost; the VTN does not push to "
                             "itself")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return  # a host name: checked once resolved, on every connection
        if not self.permits(host):
            raise NotAllowed(f"oadrTransportAddress {host} is not a public address; the VTN "
                             "pushes only to networks its configuration allows")


# IPv6 ranges whose last 32 bits are an IPv4 address some router or translator reaches:
# NAT64's well-known prefix (RFC 6052), IPv4-translated (RFC 2765), IPv4-compatible (deprecated).
# Python 3.11's ``is_global`` calls them global whatever IPv4 address they carry.
_EMBEDDING = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, where the IPv4 part varies


def _ipv4_inside(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in _EMBEDDING):
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


class TargetResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses :class:`PushTargets` permits (an
    :class:`OSError`, which aiohttp reports as a connection failure, when none is left)."""

    def __init__(self, targets: PushTargets) -> None:
        self._targets = targets
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [result for result in found if self._targets.permits(result["host"])]
        if not kept:
            raise OSError(f"{host} resolves to no address the VTN may push to")
        return kept

    async def close(self) -> None:
        await self._inner.close()
