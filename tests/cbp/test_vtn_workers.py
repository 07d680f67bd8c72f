"""``crowdflex vtn --workers N``: N processes on one port (SO_REUSEPORT) and one PostgreSQL
database; refused with a reason on SQLite or with ``[xmpp]``, before anything starts. The CBP
roles ``crowdflex tso`` and ``aggregator`` keep their market in memory and refuse ``--workers 2``
with the reason.

The command runs as a real process tree (parent + workers) from a TOML config with port 0; the
parent's ``--status-file`` names the port they share and each worker's admin port. VENs making
fresh connections to that one port are spread by the kernel over both workers (each worker's
/metrics counts its own share; together they count every request). A worker killed with
SIGKILL is started again by the parent; SIGTERM to the parent stops them all, exit 0; with
``--log-format json`` every line the parent and the workers log is one JSON object. With three
workers, killing the one that holds most VEN connections loses no VEN: an event published once
the parent restarted it reaches every VEN on its next poll (once the third worker heard of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench._vtn_group import admin_ready, status_when, stop_tree
from cbp.cli import main
from schemas import Codec, DistributeEvent, Message, Poll, Response
from tests.acceptance import mint_vens
from tests.kit.pki import Pki
from tests.vtn.harness import RawVen, raw_ven
from vtn.transport import SERVICE_PREFIX

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "workers-cli-admin-token-0123456789"
_CLI = "import sys; from cbp.cli import main; sys.exit(main(sys.argv[1:]))"
CONNECTIONS = 24  # all on one worker by chance: 2 ** -23


def _config(pki: Pki, directory: Path, storage: str) -> Path:
    config = directory / "vtn.toml"
    config.write_text(
        f'storage_url = "{storage}"\nhost = "127.0.0.1"\nport = 0\n'
        f'[tls]\ncert = "{pki.vtn.cert}"\nkey = "{pki.vtn.key}"\nca = "{pki.ca_cert}"\n'
        f'[admin]\nport = 0\ntoken = "{TOKEN}"\n')
    return config


def test_sqlite_refuses_more_than_one_worker_before_starting(pki, tmp_path, capsys):
    database = tmp_path / "vtn.db"
    config = _config(pki, tmp_path, f"sqlite:///{database}")
    assert main(["vtn", "--config", str(config), "--workers", "2"]) == 2
    error = capsys.readouterr().err
    assert "--workers 2 needs a PostgreSQL storage_url" in error
    assert "one writer at a time" in error
    assert not database.exists()  # refused before a database was opened
    assert main(["vtn", "--config", str(config), "--workers", "0"]) == 2


def test_xmpp_refuses_more_than_one_worker_before_starting(pki, tmp_path, capsys):
    """Red team: two VTN processes with one certificate and [xmpp] log in as one JID, and the
    XMPP server ends the older session each time the other logs in: on a real Prosody they
    threw each other out at every ``reconnect_s`` for as long as they ran."""
    config = _config(pki, tmp_path, "postgresql://crowdflex@127.0.0.1:1/never-opened")
    config.write_text(config.read_text() + '[xmpp]\nhost = "127.0.0.1"\nport = 1\n')
    assert main(["vtn", "--config", str(config), "--workers", "2"]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "--workers 2 cannot serve [xmpp]" in error
    assert "as the VTN's one JID" in error


@pytest.mark.parametrize(("role", "reason"), [
    ("tso", "a second process would award the same ISP again"),
    ("aggregator", "would offer the pool to the TSO twice"),
])
def test_the_cbp_roles_refuse_more_than_one_worker_and_say_why(role, reason, tmp_path, capsys):
    config = ROOT / "examples" / f"{role}.toml"
    state = tmp_path / "state"
    assert main([role, "--config", str(config), "--state-dir", str(state),
                 "--workers", "2"]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert f"--workers 2: the {'TSO' if role == 'tso' else role} runs as one process" in error
    assert reason in error
    assert not state.exists()  # refused before a database, outbox or status file was made


# the command's status file and each worker's /ready, within a minute
_status = partial(status_when, timeout=60.0)
_ready = partial(admin_ready, timeout=60.0)


async def _polls_counted(http: aiohttp.ClientSession, admin_port: int) -> float:
    async with http.get(f"http://127.0.0.1:{admin_port}/metrics") as reply:
        text = await reply.text()
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == "crowdflex_vtn_requests_total" and s.labels["service"] == "OadrPoll")


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_workers_share_one_port_on_postgresql(pki, tmp_path, storage_url):
    config = _config(pki, tmp_path, storage_url)
    status_file, log_file = tmp_path / "status.json", tmp_path / "vtn.log"
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CLI, "vtn", "--config", str(config), "--workers", "2",
            "--status-file", str(status_file), "--log-format", "json", cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=log)
    try:
        async with aiohttp.ClientSession() as http:
            status = await _status(status_file, lambda s: s.get("state") == "serving", process)
            workers = status["workers"]
            assert len(workers) == 2 and len({w["pid"] for w in workers}) == 2
            for worker in workers:
                await _ready(http, worker["admin_port"])
            url = f"https://127.0.0.1:{status['port']}{SERVICE_PREFIX}/OadrPoll"
            for _ in range(CONNECTIONS):  # a new connection each: the kernel picks a worker
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                        ssl=pki.client_context(), force_close=True)) as ven, \
                        ven.post(url, data=Codec().encode(Poll(ven_id="unregistered")),
                                 headers={"Content-Type": "application/xml"}) as reply:
                    assert reply.status == 200
                    assert isinstance(Codec().decode(await reply.read()), Response)
            counted = [await _polls_counted(http, w["admin_port"]) for w in workers]
            assert sum(counted) == CONNECTIONS
            assert all(c > 0 for c in counted), counted  # both workers served the port

            first = workers[0]
            os.kill(first["pid"], signal.SIGKILL)
            status = await _status(
                status_file, lambda s: s["workers"][0]["pid"] != first["pid"], process)
            await _ready(http, status["workers"][0]["admin_port"])
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await process.wait() == 0
        stopped = json.loads(status_file.read_text())
        assert stopped["state"] == "stopped"
        for worker in stopped["workers"]:
            with pytest.raises(ProcessLookupError):
                os.kill(worker["pid"], 0)
        _json_logged(log_file, parent=process.pid,
                     workers={first["pid"], *(w["pid"] for w in stopped["workers"])})
    finally:
        await stop_tree(process)  # its workers too, whatever failed above


def _json_logged(path: Path, *, parent: int, workers: set[int]) -> None:
    """``--log-format json``: every line the parent and its workers wrote is one JSON object;
    each worker said it serves, the parent that it restarted the killed one."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines and all({"time", "level", "logger", "pid", "message"} <= set(line)
                         for line in lines)
    serving = {line["pid"] for line in lines if "serving on https://" in line["message"]}
    assert serving == workers
    assert any(line["pid"] == parent and line["level"] == "WARNING"
               and "starting it again" in line["message"] for line in lines)


async def _gauge(http: aiohttp.ClientSession, admin_port: int, name: str) -> float:
    async with http.get(f"http://127.0.0.1:{admin_port}/metrics") as reply:
        text = await reply.text()
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == name)


async def _poll_reconnecting(ven: RawVen) -> Message:
    """A VEN's poll; a connection its worker took down with it is opened again, once."""
    try:
        return await ven.poll()
    except aiohttp.ClientConnectionError:
        return await ven.poll()


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_vens_of_a_killed_worker_reconnect_to_the_others(pki, tmp_path,
                                                               storage_url):
    """Three workers; the one holding most VEN connections is killed (SIGKILL); an event
    published right after reaches every VEN on its next poll: their connections to the dead
    worker are opened again and the kernel hands them to a live one."""
    count = 12
    config = _config(pki, tmp_path, storage_url)
    status_file = tmp_path / "status.json"
    certificates = mint_vens(pki, tmp_path, count, "failover")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLI, "vtn", "--config", str(config), "--workers", "3",
        "--status-file", str(status_file), "--log-level", "WARNING", cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        async with aiohttp.ClientSession() as http, contextlib.AsyncExitStack() as stack:
            status = await _status(status_file, lambda s: s.get("state") == "serving", process)
            workers = status["workers"]
            for worker in workers:
                await _ready(http, worker["admin_port"])
            url = f"https://127.0.0.1:{status['port']}{SERVICE_PREFIX}"
            vens = [await stack.enter_async_context(raw_ven(url, pki.client_context(ven=c)))
                    for c in certificates]
            for ven in vens:
                await ven.register()
                await ven.drain()
            held = [await _gauge(http, w["admin_port"], "crowdflex_vtn_vens_connected")
                    for w in workers]
            assert sum(held) == count
            index = held.index(max(held))
            victim = workers[index]
            survivor, bystander = (w for w in workers if w is not victim)
            os.kill(victim["pid"], signal.SIGKILL)
            await _status(  # the parent saw it die (its sockets are closed) and restarted it
                status_file, lambda s: s["workers"][index]["pid"] != victim["pid"], process)
            heard = await _gauge(http, bystander["admin_port"],
                                 "crowdflex_vtn_notifications_heard_total")

            start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
            async with http.post(
                    f"http://127.0.0.1:{survivor['admin_port']}/events",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"event_id": "after-kill", "market_context": "http://cbp.example/mc",
                          "start": start, "targets": {"ven_ids": [v.ven_id for v in vens]},
                          "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                                       "intervals": [{"duration_s": 900, "value": 1.0}]}]},
                    ) as reply:
                assert reply.status == 201, await reply.text()
            async with asyncio.timeout(30):  # the third worker heard it (milliseconds)
                while await _gauge(http, bystander["admin_port"],
                                   "crowdflex_vtn_notifications_heard_total") <= heard:
                    await asyncio.sleep(0.05)  # re-scrape interval, bounded by the deadline
            for ven in vens:
                got = await _poll_reconnecting(ven)
                assert isinstance(got, DistributeEvent), (ven.ven_id, got)
                assert [e.event_id for e in got.events] == ["after-kill"]
    finally:
        await stop_tree(process)


async def _ended(pid_fd: int) -> None:
    """Once the process behind ``pid_fd`` (os.pidfd_open) has exited: the descriptor turns
    readable then, whoever reaps it."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(pid_fd, lambda: ended.done() or ended.set_result(None))
    try:
        await ended
    finally:
        loop.remove_reader(pid_fd)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_workers_end_when_their_parent_is_killed(pki, tmp_path, storage_url):
    """SIGKILL to the parent (the OOM killer, say) leaves no worker serving the port with
    nobody to restart or stop it: each gets SIGTERM from the kernel and ends."""
    config = _config(pki, tmp_path, storage_url)
    status_file = tmp_path / "status.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLI, "vtn", "--config", str(config), "--workers", "2",
        "--status-file", str(status_file), "--log-level", "WARNING", cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    pids: list[int] = []
    watches: list[int] = []
    try:
        status = await _status(status_file, lambda s: s.get("state") == "serving", process)
        pids = [w["pid"] for w in status["workers"]]
        watches = [os.pidfd_open(pid) for pid in pids]
        process.kill()
        await process.wait()
        async with asyncio.timeout(60):
            for watch in watches:
                await _ended(watch)
    finally:
        for watch in watches:
            os.close(watch)
        await stop_tree(process)
        for pid in pids:  # orphans, had the kernel not ended them: not left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
