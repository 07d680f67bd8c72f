"""Demos that run crowdflex nodes on loopback: real sockets, real mutual TLS, real SQLite files."""

from __future__ import annotations

from .exchange import ExchangeSummary, run_exchange

__all__ = ["ExchangeSummary", "run_exchange"]
