"""The device-fleet configuration the demo writes reads back as written (hold, concurrency)."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from cbp.roles.fleetnode import _first_of, demo_fleet_toml, fleet_config_from_table
from tomlconfig import ConfigError, Table


def _toml(tmp_path: Path, **extra: object) -> str:
    return demo_fleet_toml(url="https://127.0.0.1:1", ca=tmp_path / "ca.pem", certs=tmp_path,
                           names=("device-00000", "device-00001"), seed=3,
                           outbox=tmp_path / "o.db", device_poll=timedelta(seconds=8),
                           telemetry_batch=timedelta(seconds=12), **extra)  # type: ignore[arg-type]


def _table(tmp_path: Path, text: str) -> Table:
    return Table(tomllib.loads(text), source="device.toml", base=tmp_path)


def test_demo_config_round_trips_hold_and_concurrency(tmp_path: Path) -> None:
    config = fleet_config_from_table(_table(tmp_path, _toml(tmp_path, register_concurrency=64,
                                                             hold=True)))
    assert config.hold_after_registration is True
    assert config.register_concurrency == 64
    assert config.names == ("device-00000", "device-00001") and config.seed == 3
    assert config.settings.timing.device_poll == timedelta(seconds=8)


def test_hold_defaults_off_and_must_be_a_boolean(tmp_path: Path) -> None:
    text = _toml(tmp_path)
    assert fleet_config_from_table(_table(tmp_path, text)).hold_after_registration is False
    data = tomllib.loads(text)
    data["fleet"]["hold_after_registration"] = "yes"
    with pytest.raises(ConfigError, match=r"^device\.toml: fleet\.hold_after_registration: "
                                          r"expected true or false, got 'yes'$"):
        fleet_config_from_table(Table(data, source="device.toml", base=tmp_path))


@pytest.mark.parametrize(("change", "says"), [
    ({"aggregator": {"url": "http://x:1"}}, "aggregator.url: expected an https:// URL"),
    ({"fleet": {"seed": 1.5}}, "fleet.seed: expected an integer"),
    ({"fleet": {"count": 0}}, "fleet.count: expected an integer of at least 1"),
    ({"fleet": {"sede": 3}}, "unknown key fleet.sede"),
    ({"profile": {"device_poll_s": "8"}}, "profile.device_poll_s: expected a number"),
    ({"profile": {"bid_price_eur_per_mwh": 180.5}},
     "profile.bid_price_eur_per_mwh: expected a decimal number as a string"),
])
def test_every_fleet_config_error_names_the_file_the_key_and_what_is_expected(
        tmp_path: Path, change: dict[str, dict[str, object]], says: str) -> None:
    data = tomllib.loads(_toml(tmp_path))
    for table, values in change.items():
        data[table].update(values)
    with pytest.raises(ConfigError) as refused:
        fleet_config_from_table(Table(data, source="device.toml", base=tmp_path))
    assert str(refused.value).startswith(f"device.toml: {says}")


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
