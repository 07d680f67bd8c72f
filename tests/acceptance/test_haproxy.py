"""Two ``crowdflex vtn`` processes on two loopback ports and one PostgreSQL database, behind a
real HAProxy in TCP mode (docs/deploy.md): the VENs know only HAProxy's address.

Mutual TLS passes through HAProxy and ends at the VTN process: each VEN's venID is the
fingerprint of its own client certificate. HAProxy's round robin sends the two VENs' connections
to different processes (each process's /metrics counts one registration), and an event published
through one process reaches both VENs on their next poll (once the other process heard of it).
HAProxy's configuration is the one docs/deploy.md shows (TCP mode, round robin, each process's
/ready as its health check).

Needs the Debian package ``haproxy``; without it the test is skipped, naming the package, except
with ``CROWDFLEX_REQUIRE_HAPROXY=1`` (as in CI, whose ``.ci/run`` installs it), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench._vtn_group import stop_tree
from schemas import DistributeEvent
from tests.acceptance import VtnProcess
from tests.kit.net import free_port
from tests.vtn.harness import raw_ven
from vtn.transport import SERVICE_PREFIX


def _haproxy() -> str:
    found = shutil.which("haproxy")
    if found is not None:
        return found
    reason = "HAProxy is not installed (Debian package: haproxy)"
    if os.environ.get("CROWDFLEX_REQUIRE_HAPROXY") == "1":
        pytest.fail(f"{reason} (CROWDFLEX_REQUIRE_HAPROXY=1)")
    pytest.skip(reason)


def _config(port: int, backends: list[VtnProcess]) -> str:
    servers = "\n".join(
        f"    server vtn{i} 127.0.0.1:{b.port} check port {b.admin_port} inter 1s"
        for i, b in enumerate(backends))
    return (
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 120s\n"
        "    timeout server 120s\n"
        f"frontend openadr\n    bind 127.0.0.1:{port}\n    default_backend vtn\n"
        "backend vtn\n    balance roundrobin\n    option httpchk GET /ready\n"
        f"{servers}\n")


async def _listening(port: int, process: asyncio.subprocess.Process,
                     timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if process.returncode is not None:
                pytest.fail(f"haproxy exited with {process.returncode}")
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # probe interval, bounded by the deadline
                continue
            writer.close()
            return


async def _metric(vtn: VtnProcess, name: str, **labels: str) -> float:
    async with aiohttp.ClientSession() as http, \
            http.get(f"{vtn.admin_url}/metrics") as reply:
        text = await reply.text()
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def _heard_more_than(vtn: VtnProcess, heard: float, timeout: float = 30.0) -> None:
    """Wait until ``vtn`` applied another worker's notification (milliseconds, docs/deploy.md)."""
    async with asyncio.timeout(timeout):
        while await _metric(vtn, "crowdflex_vtn_notifications_heard_total") <= heard:
            await asyncio.sleep(0.05)  # re-scrape interval, bounded by the deadline


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_vens_behind_haproxy_reach_both_vtn_processes(pki, tmp_path: Path,
                                                            storage_url):
    haproxy = _haproxy()
    backends = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        backends.append(VtnProcess(pki, storage_url, tmp_path / name))
    proxy: asyncio.subprocess.Process | None = None
    try:
        for vtn in backends:
            await vtn.start()
        port = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(_config(port, backends))
        proxy = await asyncio.create_subprocess_exec(haproxy, "-db", "-f", str(config))
        await _listening(port, proxy)

        url = f"https://127.0.0.1:{port}{SERVICE_PREFIX}"
        async with raw_ven(url, pki.client_context(ven=pki.vens[0])) as first, \
                raw_ven(url, pki.client_context(ven=pki.vens[1])) as second:
            for ven in (first, second):
                await ven.register()
                await ven.drain()
            # mutual TLS ended at the VTN: it saw each VEN's own certificate
            assert (first.ven_id, second.ven_id) == (pki.vens[0].fingerprint,
                                                     pki.vens[1].fingerprint)
            assert [await _metric(vtn, "crowdflex_vtn_requests_total",
                                  service="EiRegisterParty") for vtn in backends] == [1, 1]
            heard = await _metric(backends[1], "crowdflex_vtn_notifications_heard_total")

            start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
            status, _ = await backends[0].admin("POST", "/events", {
                "event_id": "via-haproxy", "market_context": "http://cbp.example/mc",
                "start": start, "targets": {"ven_ids": [first.ven_id, second.ven_id]},
                "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                             "intervals": [{"duration_s": 900, "value": 2.0}]}]})
            assert status == 201
            await _heard_more_than(backends[1], heard)
            for ven in (first, second):
                reply = await ven.poll()
                assert isinstance(reply, DistributeEvent)
                assert [e.event_id for e in reply.events] == ["via-haproxy"]
    finally:
        if proxy is not None:
            await stop_tree(proxy, grace_s=15.0)
        for vtn in backends:
            await vtn.stop()
