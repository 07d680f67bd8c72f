"""`crowdflex certs` (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("certs", help="(being written)")
    parser.set_defaults(run=lambda args: 2)
