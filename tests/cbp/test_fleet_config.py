"""The device-fleet configuration the demo writes reads back as written (hold, concurrency)."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from cbp.roles.fleetnode import _first_of, demo_fleet_toml, fleet_config_from_mapping


def _toml(tmp_path: Path, **extra: object) -> str:
    return demo_fleet_toml(url="https://127.0.0.1:1", ca=tmp_path / "ca.pem", certs=tmp_path,
                           names=("device-00000", "device-00001"), seed=3,
                           outbox=tmp_path / "o.db", device_poll=timedelta(seconds=8),
                           telemetry_batch=timedelta(seconds=12), **extra)  # type: ignore[arg-type]


def test_demo_config_round_trips_hold_and_concurrency(tmp_path: Path) -> None:
    config = fleet_config_from_mapping(
        tomllib.loads(_toml(tmp_path, register_concurrency=64, hold=True)), base=tmp_path)
    assert config.hold_after_registration is True
    assert config.register_concurrency == 64
    assert config.names == ("device-00000", "device-00001") and config.seed == 3
    assert config.settings.timing.device_poll == timedelta(seconds=8)


def test_hold_defaults_off_and_must_be_a_boolean(tmp_path: Path) -> None:
    data = tomllib.loads(_toml(tmp_path))
    assert fleet_config_from_mapping(data, base=tmp_path).hold_after_registration is False
    data["fleet"]["hold_after_registration"] = "yes"
    with pytest.raises(ValueError, match="hold_after_registration"):
        fleet_config_from_mapping(data, base=tmp_path)


async def _after(event: asyncio.Event) -> bool:
    await event.wait()
    return True


def test_first_of_is_true_only_when_go_finishes_first() -> None:
    async def scenario(go_first: bool) -> bool:
        go, stop = asyncio.Event(), asyncio.Event()
        (go if go_first else stop).set()
        async with asyncio.timeout(5):
            return await _first_of(_after(go), _after(stop))

    assert asyncio.run(scenario(True)) is True
    assert asyncio.run(scenario(False)) is False
