"""File descriptors of a VTN process (vtn/site.py): the soft ``RLIMIT_NOFILE`` is raised at start
towards what the connection caps need, an ERROR says so when the hard limit is too low, and
silent sockets cannot exhaust the descriptors an honest VEN needs.

Each VTN runs in a child process under its own limit (tests/security/rlimited_vtn.py), so nothing
depends on the limits of the machine or of the test runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from schemas import Poll, Response
from tests.vtn.harness import RawVen

REPO = Path(__file__).resolve().parents[2]
START_S = 60.0  # a cold child imports the whole VTN; generous on a loaded machine
GRACE_S = 10.0
HANDSHAKE_S = 120.0  # beyond every wait here: no silent socket is freed by the deadline
HONEST_ADDRESS = "127.0.0.2"


@dataclass
class Child:
    url: str
    nofile: int
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def rlimited_vtn(pki, tmp_path: Path, soft: int, hard: int,
                       **config: object) -> AsyncIterator[Child]:
    values = {"storage_url": f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
              "tls_cert": str(pki.vtn.cert), "tls_key": str(pki.vtn.key),
              "tls_ca": str(pki.ca_cert), "admin_enabled": False, **config}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.security.rlimited_vtn", str(soft), str(hard),
        json.dumps(values), cwd=REPO, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stdin is not None
    try:
        async with asyncio.timeout(START_S):
            line = (await process.stdout.readline()).decode()
        assert line.startswith("PORT "), line
        _, port, _, nofile = line.split()
        yield Child(url=f"https://127.0.0.1:{port}/OpenADR2/Simple/2.0b", nofile=int(nofile),
                    process=process)
    finally:
        process.stdin.close()
        async with asyncio.timeout(START_S):
            await process.wait()


async def _stderr(child: Child) -> str:
    assert child.process.stderr is not None
    async with asyncio.timeout(START_S):
        return (await child.process.stderr.read()).decode()


def _hard_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


async def test_the_soft_limit_is_raised_to_what_the_caps_need(pki, tmp_path: Path) -> None:
    """Started with a soft limit of 256: the caps need 1,000 + 100 + 256 descriptors, so the VTN
    raises its soft limit to that (or to the hard limit, saying so at ERROR, when that is
    lower)."""
    hard = _hard_limit()
    needed = 1000 + 100 + 256
    async with rlimited_vtn(pki, tmp_path, 256, hard, max_connections=1000,
                            max_pending_handshakes=100) as child:
        assert child.nofile == min(hard, needed)
    said = await _stderr(child)
    assert ("open-file limit" in said) == (hard < needed), said


async def test_silent_sockets_do_not_lock_honest_vens_out(pki, tmp_path: Path) -> None:
    """The reviewer's run: RLIMIT_NOFILE 300 (soft and hard, so it cannot be raised), 300 TCP
    connections from one address that never send a ClientHello, reopened as soon as they are
    dropped. Before the pending-handshake caps 13 of 14 honest connections failed and nothing
    was logged. Now the silent sockets over the per-address cap are closed at once, 14 honest
    connections from another address are all served, and the VTN logged both the too-low limit
    and the shedding."""
    async with rlimited_vtn(pki, tmp_path, 300, 300, rate_limit_per_s=None,
                            tls_handshake_timeout_s=HANDSHAKE_S) as child:
        attacker = _Attacker(child.url, 300)
        flood = asyncio.get_running_loop().create_task(attacker.run())
        try:
            async with asyncio.timeout(GRACE_S):
                await attacker.all_opened.wait()
            served = [await _honest_poll(child.url, pki) for _ in range(14)]
        finally:
            flood.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flood
            attacker.close()
        assert served == [True] * 14
        assert attacker.reopened > 0  # the VTN shed silent sockets (and they came back)
    said = await _stderr(child)
    assert "open-file limit 300 is below" in said, said
    assert "shedding connections" in said and "from 127.0.0.1" in said, said


class _Attacker:
    """Holds ``count`` silent TCP connections, reopening each one the VTN drops."""

    def __init__(self, url: str, count: int) -> None:
        host_port = url.split("//")[1].split("/")[0]
        self.host, port = host_port.split(":")
        self.port = int(port)
        self.count = count
        self.writers: list[asyncio.StreamWriter] = []
        self.all_opened = asyncio.Event()
        self.opened = 0
        self.reopened = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(self.count):
                group.create_task(self._hold())

    async def _hold(self) -> None:
        first = True
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                continue
            self.writers.append(writer)
            if first:
                first = False
                self.opened += 1
                if self.opened == self.count:
                    self.all_opened.set()
            else:
                self.reopened += 1
            await reader.read()  # until the VTN drops it
            writer.close()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


async def _honest_poll(url: str, pki) -> bool:
    """One poll on a fresh connection from HONEST_ADDRESS: True if the VTN answered it."""
    context = pki.client_context()
    ven = RawVen(url, context)
    await ven.session.close()
    ven.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=context, local_addr=(HONEST_ADDRESS, 0)))
    try:
        async with asyncio.timeout(GRACE_S):
            reply = await ven.post("OadrPoll", Poll(ven_id="unregistered"))
        return isinstance(reply, Response)  # 463 for an unregistered VEN: answered
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
    finally:
        await ven.close()
