"""A held device fleet (``crowdflex device`` under ``crowdflex demo``) follows its supervisor: it
starts on a line on stdin and stops when stdin ends, so a killed demo leaves no fleet behind."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from cbp.demo.child import FleetProcess
from cbp.roles.fleetnode import demo_fleet_toml
from devpki import CertificateAuthority, Role
from tests.kit.net import free_port


async def _held_fleet(tmp_path: Path) -> FleetProcess:
    """A held one-device fleet whose aggregator is not there (so it registers nobody)."""
    ca = CertificateAuthority.create(common_name="fleet supervisor test CA")
    ca_cert, _ = ca.write(tmp_path)
    ca.issue("device-0", Role.VEN).write(tmp_path)
    config = tmp_path / "devices.toml"
    config.write_text(demo_fleet_toml(
        url=f"https://127.0.0.1:{free_port()}", ca=ca_cert, certs=tmp_path,
        names=("device-0",), seed=1, outbox=tmp_path / "outbox.db",
        device_poll=timedelta(seconds=4), telemetry_batch=timedelta(seconds=12), hold=True))
    fleet = await FleetProcess.start(config, tmp_path / "devices.log")
    await fleet.wait_for("holding", 60)
    return fleet


async def test_a_held_fleet_whose_supervisor_is_gone_never_starts(tmp_path: Path) -> None:
    """Tried: stdin closed while the fleet holds (its supervisor died before releasing it). The
    process ends by itself, without ever reporting that it runs."""
    fleet = await _held_fleet(tmp_path)
    assert fleet.process.stdin is not None
    fleet.process.stdin.close()
    async with asyncio.timeout(30):
        assert await fleet.process.wait() == 1  # ended by itself; 1: nobody registered
    assert not any("running" in item for item in fleet.progress)


async def test_a_running_fleet_stops_when_its_supervisor_is_gone(tmp_path: Path) -> None:
    """Tried: released, then stdin closed (a supervisor killed mid-run). The fleet reports that
    it runs, then that it stops, and the process ends by itself."""
    fleet = await _held_fleet(tmp_path)
    await fleet.release()
    await fleet.wait_for("running", 30)
    assert fleet.process.stdin is not None
    fleet.process.stdin.close()
    await fleet.wait_for("stopping", 30)
    async with asyncio.timeout(30):
        assert await fleet.process.wait() == 1  # ended by itself; 1: nobody registered
