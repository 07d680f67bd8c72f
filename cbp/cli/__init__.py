"""The ``crowdflex`` command line: one sub-command module per concern, each with ``register()``.

A sub-command module adds its parser to the sub-parser set and sets ``run`` (``args -> exit code``)
as the parser default; this module only assembles them and translates nothing, but for an
output closed early (exit 1, no traceback, as the Python documentation advises for filters).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import TypeAlias

__all__ = ["SubCommands", "main"]

# The sub-parser set every register() adds its command to (what add_subparsers() returns). Quoted:
# argparse's action class is generic only in its type stubs, not at run time.
SubCommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# Sub-command modules under cbp.cli, in the order --help lists them.
_COMMAND_MODULES: tuple[str, ...] = ("demo", "certs", "conformance", "privacy", "settle", "vtn",
                                     "ven", "tso", "aggregator", "device")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crowdflex",
        description="OpenADR 2.0b VTN and VEN nodes for a Crowd Balancing Platform.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {version('crowdflex')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"cbp.cli.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except BrokenPipeError:  # whoever read the output stopped (`... --list | head`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for the exit's flush
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
