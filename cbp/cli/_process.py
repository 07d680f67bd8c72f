"""What every long-running `crowdflex` node command shares: its log level, and stopping cleanly
on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

__all__ = ["add_log_level", "configure_logging", "stop_on_signals"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_log_level(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    parser.add_argument("--log-level", default=default, choices=_LEVELS,
                        help=f"logging verbosity (default {default})")


def configure_logging(level: str) -> None:
    """Timestamped log lines on standard error (a child's stdout may carry its progress)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def stop_on_signals() -> asyncio.Event:
    """An event set when the process receives SIGINT or SIGTERM (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # platforms without signal handlers
            loop.add_signal_handler(sig, stop.set)
    return stop
