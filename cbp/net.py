"""Ports for servers that must be told theirs before they bind it (a worker's admin port, a
VEN's push receiver whose URL goes into its registration, the demo's Prosody)."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` (IPv4 or IPv6) that the kernel just handed out and no one listens on;
    the caller binds it again (another process may take it in between: a small race, accepted
    where the port must be known first)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
