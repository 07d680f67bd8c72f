"""A VTN in a process of its own, started under a chosen ``RLIMIT_NOFILE``, for the descriptor
tests (tests/security/test_descriptors.py): the limit is the child's, never the test runner's.

``python -m tests.security.rlimited_vtn SOFT HARD CONFIG_JSON``: sets the limit, serves
``VtnConfig(**CONFIG_JSON)`` with :func:`vtn.site.vtn_site` on 127.0.0.1 port 0, prints
``PORT <port> NOFILE <soft limit after start>`` and serves until its stdin ends. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from vtn.app import create_app
from vtn.settings import VtnConfig
from vtn.site import vtn_site

_PATHS = ("tls_cert", "tls_key", "tls_ca", "tls_crl")


async def _serve(config: VtnConfig) -> None:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    try:
        site = vtn_site(runner, replace(config, host="127.0.0.1", port=0))
        await site.start()
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        print(f"PORT {site.port} NOFILE {soft}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


def main() -> None:
    soft, hard, raw = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    values = {k: Path(v) if k in _PATHS else v for k, v in raw.items()}
    asyncio.run(_serve(VtnConfig(**values)))


if __name__ == "__main__":
    main()
