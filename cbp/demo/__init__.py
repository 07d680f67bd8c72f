"""Demos that run crowdflex nodes on loopback: real sockets, real mutual TLS, real SQLite files.

:func:`run_platform` runs the Crowd Balancing Platform (TSO, aggregator, device fleet) through
every flow and writes a results folder.
"""

from __future__ import annotations

from .platform import PlatformSummary, run_platform

__all__ = ["PlatformSummary", "run_platform"]
