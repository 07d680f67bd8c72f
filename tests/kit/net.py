"""Loopback ports for servers that are told a port instead of binding port 0 themselves."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """A port the kernel just handed out; the caller binds it again (tiny race, accepted)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
