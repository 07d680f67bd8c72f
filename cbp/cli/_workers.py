"""``crowdflex vtn --workers N``: N VTN processes sharing one port through SO_REUSEPORT.

The parent binds the port first (with SO_REUSEPORT, never listening: it only keeps the port, and
resolves port 0 to a real one), then starts N copies of the same command with ``--reuse-port``
and that port; the kernel spreads new connections over the workers' listening sockets. State
lives in the shared PostgreSQL database, so any worker answers any VEN.

Worker ``i`` serves its admin API (and /health, /ready, /metrics: each worker counts for itself)
on ``admin_port + i``; with ``admin_port = 0`` the parent picks a free port for each. A worker
that exits while the parent runs is started again after :data:`RESTART_DELAY_S`; SIGINT/SIGTERM
to the parent is passed to every worker, and the parent exits 0 once all of them exited 0. On
Linux a worker gets SIGTERM when the parent dies (SIGKILL, the OOM killer), so no worker goes on
serving the port with nobody to restart it or to stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ._process import StatusFile, stop_on_signals, wait_or_stop

__all__ = ["RESTART_DELAY_S", "WorkerPlan", "reserve_port", "supervise"]

log = logging.getLogger(__name__)

#: how long a worker that died waits before it is started again (no tight crash loop)
RESTART_DELAY_S: Final = 1.0
_STOP_TIMEOUT_S: Final = 30.0
_PR_SET_PDEATHSIG: Final = 1  # prctl(2): the signal this process gets when its parent dies


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerPlan:
    """What each worker gets: the command (without port options), the shared VEN port and
    its own admin port (None: no admin API)."""

    command: tuple[str, ...]
    port: int
    admin_ports: tuple[int | None, ...]

    def argv(self, index: int) -> list[str]:
        args = [*self.command, "--reuse-port", "--port", str(self.port)]
        admin = self.admin_ports[index]
        if admin is not None:
            args += ["--admin-port", str(admin)]
        return args


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` with SO_REUSEPORT and never listening: it keeps the
    port for the workers (restarted ones too) and turns port 0 into the port they all bind."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    reserved = socket.socket(family, kind, proto)
    try:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind(address)
    except OSError:
        reserved.close()
        raise
    return reserved


def worker_command(argv: Sequence[str]) -> tuple[str, ...]:
    """This interpreter running ``crowdflex`` with ``argv``."""
    return (sys.executable, "-c", "import sys; from cbp.cli import main; sys.exit(main())",
            *argv)


async def supervise(plan: WorkerPlan, status: StatusFile) -> int:
    """Run the workers until SIGINT/SIGTERM; 0 when every worker then exited 0."""
    stop = stop_on_signals()
    count = len(plan.admin_ports)
    processes = [await _start(plan, i) for i in range(count)]

    def publish() -> None:
        status.write({"state": "serving", "port": plan.port, "workers": [
            {"index": i, "pid": p.pid, "admin_port": plan.admin_ports[i]}
            for i, p in enumerate(processes)]})

    publish()
    log.info("%d VTN workers on port %d: pids %s", count, plan.port,
             ", ".join(str(p.pid) for p in processes))
    while not stop.is_set():
        waits = {asyncio.ensure_future(p.wait()): i for i, p in enumerate(processes)}
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({*waits, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (*waits, stopping):
            if task not in done:
                task.cancel()
        for task in done & waits.keys():
            index = waits[task]
            log.warning("worker %d (pid %d) exited with %s; starting it again in %s s", index,
                        processes[index].pid, task.result(), RESTART_DELAY_S)
            if await wait_or_stop(stop, RESTART_DELAY_S):
                break
            processes[index] = await _start(plan, index)
            publish()
    return await _stop_all(processes)


async def _start(plan: WorkerPlan, index: int) -> asyncio.subprocess.Process:
    parent = os.getpid()
    return await asyncio.create_subprocess_exec(
        *plan.argv(index), preexec_fn=(lambda: _end_with(parent)) if sys.platform == "linux"
        else None)


def _end_with(parent: int) -> None:
    """In the new worker, before it runs: SIGTERM when the parent dies; if it died already
    (before the request took hold), end now."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)


async def _stop_all(processes: list[asyncio.subprocess.Process]) -> int:
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    codes = []
    for process in processes:
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                codes.append(await process.wait())
        except TimeoutError:
            log.error("worker pid %d ignored SIGTERM for %s s; killing it", process.pid,
                      _STOP_TIMEOUT_S)
            process.kill()
            codes.append(await process.wait())
    return 0 if all(code == 0 for code in codes) else 1
