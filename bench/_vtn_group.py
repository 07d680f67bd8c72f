"""The real ``crowdflex vtn --workers N`` on a fresh PostgreSQL database, for the benchmarks that
need several worker processes (``bench.failover``, ``bench.workers``).

:func:`fresh_database` makes an empty database on a PostgreSQL server (dropped afterwards);
:func:`vtn_group` writes a VTN config for the bench PKI (``bench.vtn.mint``), starts the command
as a process tree on a free port, waits until every worker answers ``/ready`` and stops the tree
on the way out (:func:`stop_tree`: SIGTERM, then SIGKILL to it and every process under it after
a deadline, so no worker outlives a parent that did not stop them). :func:`process_cpu_s` reads a
process's CPU from /proc, so the VTN workers and PostgreSQL's backends are counted alike.

Invariants: every wait has a deadline, and one missed raises with what was awaited and what was
seen last; the admin token and every file live in the run's
temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

__all__ = ["DEFAULT_SERVER", "VtnGroup", "admin_ready", "fresh_database", "kill_tree",
           "libpq_dsn", "process_cpu_s", "status_when", "stop_tree", "vtn_group"]

ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_SERVER: Final = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN: Final = "bench-group-admin-token-0123456789"
_CLI: Final = "import sys; from cbp.cli import main; sys.exit(main(sys.argv[1:]))"
_DEADLINE_S: Final = 120.0
_TICKS: Final = os.sysconf("SC_CLK_TCK")


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as asyncpg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(server: str) -> AsyncIterator[str]:
    """A new empty PostgreSQL database on ``server``'s host, dropped afterwards."""
    admin = await asyncpg.connect(libpq_dsn(server), timeout=10)
    name = f"crowdflex_bench_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(libpq_dsn(server)).set(database=name).render_as_string(
            hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (/proc), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


@dataclass(slots=True, kw_only=True)
class VtnGroup:
    """A running ``crowdflex vtn --workers N``: its shared port and each worker's pid and admin
    port (as its status file says; re-read with :meth:`refresh`)."""

    process: asyncio.subprocess.Process
    status_file: Path
    port: int
    workers: list[dict[str, Any]]

    async def refresh(self, wanted: Any) -> None:
        status = await status_when(self.status_file, wanted, self.process)
        self.workers = _workers(status)

    async def gauge(self, http: aiohttp.ClientSession, index: int, name: str) -> float:
        port = self.workers[index]["admin_port"]
        async with http.get(f"http://127.0.0.1:{port}/metrics") as reply:
            text = await reply.text()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((name + " ", name + "{")))

    async def publish(self, http: aiohttp.ClientSession, event_id: str,
                      ven_ids: list[str]) -> None:
        """One event to ``ven_ids`` through worker 0's admin API."""
        start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        body = {"event_id": event_id, "market_context": "http://cbp.example/mc",
                "start": start, "targets": {"ven_ids": ven_ids},
                "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                             "intervals": [{"duration_s": 900, "value": 1.0}]}]}
        port = self.workers[0]["admin_port"]
        async with http.post(f"http://127.0.0.1:{port}/events", json=body,
                             headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
            if reply.status != 201:
                raise RuntimeError(f"publish: HTTP {reply.status} {await reply.text()}")


def _workers(status: dict[str, Any]) -> list[dict[str, Any]]:
    # one worker runs without a parent: its own status names its port and admin port
    return status.get("workers") or [{"index": 0, "pid": status["pid"],
                                      "admin_port": status["admin_port"]}]


def _config(directory: Path, storage_url: str, pki: Any, poll_s: float) -> Path:
    config = directory / "vtn.toml"
    config.write_text(
        f'storage_url = "{storage_url}"\nhost = "127.0.0.1"\nport = 0\n'
        f"poll_frequency_s = {poll_s}\n"
        # every VEN comes from 127.0.0.1 here; a fleet comes from many addresses
        "max_pending_handshakes_per_address = 1000\n"
        f'[tls]\ncert = "{pki.vtn_cert}"\nkey = "{pki.vtn_key}"\nca = "{pki.ca}"\n'
        f'[admin]\nport = 0\ntoken = "{TOKEN}"\n')
    return config


async def status_when(path: Path, wanted: Any, process: asyncio.subprocess.Process, *,
                      timeout: float = _DEADLINE_S) -> Any:
    """The command's status file once ``wanted(status)`` holds (re-read under a deadline);
    RuntimeError when the command exits first or the deadline passes (with the last status)."""
    status: Any = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"crowdflex vtn exited with {process.returncode}")
                try:
                    status = json.loads(path.read_text())
                except (FileNotFoundError, json.JSONDecodeError):
                    status = {}
                if status and wanted(status):
                    return status
                await asyncio.sleep(0.05)  # re-read interval, bounded by the deadline
    except TimeoutError:
        raise RuntimeError(f"{path.name}: the awaited status not written within {timeout:g} s; "
                           f"last read: {status or 'nothing'}") from None


async def admin_ready(http: aiohttp.ClientSession, admin_port: int, *,
                      timeout: float = _DEADLINE_S) -> None:
    """Once the worker's admin port answers /ready with 200 (probed under a deadline);
    RuntimeError with its last answer when the deadline passes."""
    seen = "no answer"
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{admin_port}/ready") as reply:
                        if reply.status == 200:
                            return
                        seen = f"HTTP {reply.status} {(await reply.text())[:200]!r}"
                except aiohttp.ClientError as exc:
                    seen = repr(exc)  # not listening yet
                await asyncio.sleep(0.05)  # probe interval, bounded by the deadline
    except TimeoutError:
        raise RuntimeError(f"admin port {admin_port}: /ready not 200 within {timeout:g} s; "
                           f"last: {seen}") from None


async def stop_tree(process: asyncio.subprocess.Process, *, grace_s: float = 60.0) -> None:
    """SIGTERM to ``process``; if it has not exited within ``grace_s``, SIGKILL to it and to
    every process under it (:func:`kill_tree`: its workers die with it rather than outlive
    it)."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(grace_s):
            await process.wait()
    except TimeoutError:
        kill_tree(process.pid)
        await process.wait()


def kill_tree(pid: int) -> None:
    """SIGKILL to ``pid`` and every process under it (found in /proc before any dies: an
    orphan is no longer found under it)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while the table was read
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [pid], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        tree += below
        todo += below
    for each in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


@asynccontextmanager
async def vtn_group(storage_url: str, directory: Path, pki: Any, *, workers: int,
                    poll_s: float = 10.0) -> AsyncIterator[VtnGroup]:
    """``crowdflex vtn --workers N`` serving, every worker ready; stopped on exit."""
    config = _config(directory, storage_url, pki, poll_s)
    status_file = directory / f"status-{uuid.uuid4().hex[:8]}.json"
    with (directory / "vtn.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CLI, "vtn", "--config", str(config), "--workers",
            str(workers), "--status-file", str(status_file), "--log-level", "WARNING",
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log)
    try:
        status = await status_when(status_file, lambda s: s.get("state") == "serving", process)
        group = VtnGroup(process=process, status_file=status_file, port=status["port"],
                         workers=_workers(status))
        async with aiohttp.ClientSession() as http:
            for worker in group.workers:
                await admin_ready(http, worker["admin_port"])
        yield group
    finally:
        await stop_tree(process)
