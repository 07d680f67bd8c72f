"""What ``crowdflex conformance vtn`` and ``conformance ven`` share: the options that choose and
report cases, where the XMPP server is, the exit status 2 with its message, and writing the JUnit
XML and the HTML page."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_run_options", "add_xmpp_server_options", "fail", "write_outputs",
           "xmpp_server_address"]


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    parser.add_argument("--html", type=Path, metavar="FILE",
                        help="also write a self-contained HTML page with every exchange")
    parser.add_argument("--list", action="store_true", help="print the case IDs and purposes, "
                        "and the passive rules, then exit")
    parser.add_argument("--only", nargs="+", default=[], metavar="ID",
                        help="run only cases whose ID starts with one of these")


def add_xmpp_server_options(parser: argparse.ArgumentParser) -> None:
    """The XMPP server both sides are clients of (OpenADR 2.0b profile 9.3)."""
    parser.add_argument("--xmpp-server", default="127.0.0.1:5222", metavar="HOST:PORT",
                        help="with --transport xmpp: the XMPP server (default 127.0.0.1:5222)")
    parser.add_argument("--xmpp-domain", default="localhost", metavar="DOMAIN",
                        help="with --transport xmpp: its XMPP domain, the name on its "
                        "certificate (default localhost)")


def xmpp_server_address(text: str) -> tuple[str, int] | str:
    """``--xmpp-server`` as (host, port), or why it is none."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"--xmpp-server {text!r} is not HOST:PORT"
    return host, int(port)


def fail(message: str) -> int:
    """Exit status 2 (the command could not run), saying why on stderr."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def write_outputs(args: argparse.Namespace, junit: Callable[[], bytes],
                  page: Callable[[], str]) -> int | None:
    """Write ``--junit`` and ``--html`` when asked; :func:`fail`'s status when one cannot be
    written, else None."""
    try:
        if args.junit is not None:
            args.junit.write_bytes(junit())
        if args.html is not None:
            args.html.write_text(page(), encoding="utf-8")
    except OSError as exc:
        return fail(f"cannot write the results: {exc}")
    return None
