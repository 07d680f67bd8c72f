"""Loading a :class:`~vtn.app.VtnConfig` from TOML (``examples/vtn.toml`` documents every key).

Invariants: unknown keys are an error (a typo must not silently fall back to a default);
durations are given in seconds (``*_s`` keys), paths relative to the TOML file's directory, and
the admin token may come from the environment (``admin_token_env``) so it stays out of files.
``[signatures]`` becomes a :class:`~vtn.signing.SignatureSettings`; a combination it cannot serve
(requiring signatures without trusted certificates to check them) is refused here, at load time.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from schemas.identity import TlsProfile
from vtn.app import VtnConfig
from vtn.signing import SignatureSettings

__all__ = ["ConfigError", "load_config", "parse_config"]


class ConfigError(ValueError):
    """The configuration file is unreadable or names an unknown or ill-typed key."""


_PATHS = ("cert", "key", "ca", "crl")
_DURATIONS = {
    "poll_frequency_s": "poll_frequency",
    "default_report_granularity_s": "default_report_granularity",
    "cancelled_event_retention_s": "cancelled_event_retention",
}


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.pop(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def parse_config(data: dict[str, Any], *, base: Path = Path(".")) -> VtnConfig:
    """Build a VtnConfig from parsed TOML (top-level keys plus [tls], [admin], [reports],
    [signatures])."""
    data = dict(data)
    values: dict[str, Any] = {}
    tls = _section(data, "tls")
    for key in _PATHS:
        if key in tls:
            values[f"tls_{key}"] = (base / str(tls.pop(key))).resolve()
    if "profile" in tls:
        values["tls_profile"] = TlsProfile(tls.pop("profile"))
    admin = _section(data, "admin")
    env = admin.pop("token_env", None)
    if env is not None:
        values["admin_token"] = os.environ.get(str(env))
    for key in ("enabled", "host", "port", "token"):
        if key in admin:
            values[f"admin_{key}"] = admin.pop(key)
    signatures = _section(data, "signatures")
    if signatures:
        values["signatures"] = _signature_settings(signatures, base)
    reports = _section(data, "reports")
    if "auto_subscribe" in reports:
        values["auto_subscribe_reports"] = tuple(str(n) for n in reports.pop("auto_subscribe"))
    if "default_granularity_s" in reports:
        values["default_report_granularity"] = timedelta(
            seconds=float(reports.pop("default_granularity_s")))
    if "allowed_fingerprints" in data:
        values["allowed_fingerprints"] = frozenset(str(f) for f in data.pop("allowed_fingerprints"))
    values.update(_proxy(data))
    for key, name in _DURATIONS.items():
        if key in data:
            values[name] = timedelta(seconds=float(data.pop(key)))
    known = {f.name for f in fields(VtnConfig)}
    leftovers = {f"tls.{k}" for k in tls} | {f"admin.{k}" for k in admin}
    leftovers |= {f"reports.{k}" for k in reports}
    leftovers |= {k for k in data if k not in known or k in values}
    if leftovers:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(leftovers))}")
    values.update(data)
    _check_connection_limits(values)
    if "storage_url" in values:
        values["storage_url"] = _relative_sqlite(str(values["storage_url"]), base)
    try:
        return VtnConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def _check_connection_limits(values: dict[str, Any]) -> None:
    # keepalive_timeout 0 would switch aiohttp's only idle/slow-header deadline off altogether.
    for key in ("keepalive_timeout_s", "tls_handshake_timeout_s", "max_connections",
                "max_connections_per_peer", "max_pending_handshakes",
                "max_pending_handshakes_per_address", "crl_check_interval_s",
                "max_line_size", "max_field_size", "max_headers"):
        value = values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value <= 0):
            raise ConfigError(f"{key} must be a positive number, not {value!r}")


def _strings(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.pop(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{key} must be a list of strings")
    return tuple(value)


def _proxy(data: dict[str, Any]) -> dict[str, Any]:
    """trusted_cert_header and the proxy it is honoured from; the header alone is refused (any
    VEN could then name itself any other VEN)."""
    values: dict[str, Any] = {}
    if "trusted_proxy_fingerprints" in data:
        values["trusted_proxy_fingerprints"] = frozenset(
            _strings(data, "trusted_proxy_fingerprints"))
    if "trusted_proxy_addresses" in data:
        addresses = _strings(data, "trusted_proxy_addresses")
        for address in addresses:
            try:
                ip_network(address)
            except ValueError as exc:
                raise ConfigError(f"trusted_proxy_addresses: {exc}") from None
        values["trusted_proxy_addresses"] = addresses
    if data.get("trusted_cert_header") is not None and not values:
        raise ConfigError("trusted_cert_header needs trusted_proxy_fingerprints or "
                          "trusted_proxy_addresses: the header is honoured only from the proxy")
    return values


def _signature_settings(table: dict[str, Any], base: Path) -> SignatureSettings:
    """[signatures] -> SignatureSettings; any key left over is refused as unknown."""
    values: dict[str, Any] = {}
    if "trusted" in table:
        trusted = table.pop("trusted")
        if isinstance(trusted, str) or not isinstance(trusted, list) or \
                not all(isinstance(item, str) for item in trusted):
            raise ConfigError("signatures.trusted must be a list of PEM file paths")
        values["trusted"] = tuple((base / item).resolve() for item in trusted)
    for key in ("require", "sign_replies", "bind_to_peer"):
        if key in table:
            flag = table.pop(key)
            if not isinstance(flag, bool):
                raise ConfigError(f"signatures.{key} must be true or false, not {flag!r}")
            values[key] = flag
    for key, name in (("replay_window_s", "replay_window"), ("max_future_s", "replay_max_future")):
        if key in table:
            seconds = table.pop(key)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                raise ConfigError(f"signatures.{key} must be a positive number of seconds")
            values[name] = timedelta(seconds=float(seconds))
    if table:
        unknown = ", ".join(sorted(f"signatures.{k}" for k in table))
        raise ConfigError(f"unknown configuration keys: {unknown}")
    settings = SignatureSettings(**values)
    if settings.require and not settings.verifies:
        raise ConfigError("signatures.require needs signatures.trusted (certificates to verify "
                          "signatures with)")
    return settings


def _relative_sqlite(url: str, base: Path) -> str:
    """``sqlite:///vtn.db`` in a config file means next to that file, not the working dir."""
    prefix, _, path = url.partition(":///")
    if not prefix.startswith("sqlite") or not path or Path(path).is_absolute():
        return url
    return f"{prefix}:///{(base / path).resolve()}"


def load_config(path: Path) -> VtnConfig:
    """Read and check a VTN TOML file."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, base=path.parent)
