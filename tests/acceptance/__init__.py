"""Acceptance tests of issue 3 against a real `crowdflex vtn` process, and the helpers they share.

:class:`VtnProcess` runs ``crowdflex vtn --config FILE`` as a subprocess on free ports, with the
session PKI and the given database; readiness is awaited by polling the admin API under a timeout.
It can be killed with SIGKILL and started again on the same database and ports.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench._vtn_group import stop_tree
from tests.kit.net import free_port
from tests.kit.pki import CertFiles, Pki

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "acceptance-admin-token-0123456789"
_CLI = "import sys; from cbp.cli import main; sys.exit(main(sys.argv[1:]))"


class VtnProcess:
    """``crowdflex vtn`` in a subprocess; :meth:`start`, :meth:`kill`, :meth:`stop`."""

    def __init__(self, pki: Pki, storage_url: str, directory: Path) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.config = directory / "vtn.toml"
        self.log = directory / "vtn.log"
        self.config.write_text(
            f'vtn_id = "ACCEPTANCE-VTN"\nstorage_url = "{storage_url}"\nhost = "127.0.0.1"\n'
            f"port = {self.port}\npoll_frequency_s = 1\nrate_limit_per_s = 100000.0\n"
            "rate_limit_burst = 100000\noffer_metadata = false\n"
            f'[tls]\ncert = "{pki.vtn.cert}"\nkey = "{pki.vtn.key}"\nca = "{pki.ca_cert}"\n'
            '[reports]\nauto_subscribe = ["TELEMETRY_USAGE"]\ndefault_granularity_s = 4\n'
            f'[admin]\nport = {self.admin_port}\ntoken = "{TOKEN}"\n')
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _CLI, "vtn", "--config", str(self.config),
                "--log-level", "WARNING", cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log, stderr=log)
        async with asyncio.timeout(timeout):
            while not await self._ready():
                if self.process.returncode is not None:
                    raise RuntimeError(f"the VTN exited: {self.log.read_text()[-2000:]}")
                await asyncio.sleep(0.05)  # readiness probe interval, bounded by the timeout

    async def _ready(self) -> bool:
        try:
            status, _ = await self.admin("GET", "/vens")
        except (aiohttp.ClientError, OSError):
            return False
        return status == 200

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One admin API call; (HTTP status, decoded JSON or None)."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http, http.request(
                method, self.admin_url + path, json=body,
                timeout=aiohttp.ClientTimeout(total=10)) as reply:
            data = await reply.json() if reply.content_type == "application/json" else None
            return reply.status, data

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None:
            await stop_tree(self.process, grace_s=15.0)


def mint_vens(pki: Pki, directory: Path, count: int, prefix: str) -> tuple[CertFiles, ...]:
    """``count`` VEN certificates from the session CA (EC P-256: milliseconds each)."""
    from devpki import Role

    minted = []
    for index in range(count):
        issued = pki.authority.issue(f"{prefix}-{index}", Role.VEN)
        cert, key = issued.write(directory)
        minted.append(CertFiles(name=issued.name, cert=cert, key=key, cert_pem=issued.cert_pem,
                                fingerprint=issued.fingerprint))
    return tuple(minted)
