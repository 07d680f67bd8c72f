"""Loading a :class:`VenConfig` from TOML (``examples/ven.toml`` documents every key).

Mirrors :mod:`vtn.config`. Invariants: unknown keys are an error (a typo must not silently fall
back to a default); durations are given in seconds (``*_s`` keys); paths are relative to the TOML
file's directory; ``mode = "push"`` needs a ``[push]`` listener, and pull mode refuses one (a
listener nobody announces would be an open port for nothing); requiring signed VTN payloads
needs certificates to verify them with.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from schemas import Codec, ReplayGuard, Signer, Verifier
from schemas.certpath import Purpose
from schemas.identity import TlsProfile

__all__ = [
    "ConfigError", "TransportMode", "VenConfig", "load_config", "parse_config", "wire_codec",
]


class ConfigError(ValueError):
    """The configuration file is unreadable or names an unknown or ill-typed key."""


class TransportMode(StrEnum):
    """How the VTN's payloads reach the VEN (OpenADR 2.0b profile 9.1: simpleHttp pull or push)."""

    PULL = "pull"
    PUSH = "push"


@dataclass(frozen=True, slots=True, kw_only=True)
class VenConfig:
    """Everything a ``crowdflex ven`` deployment can set."""

    vtn_url: str
    ven_name: str
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_profile: TlsProfile = TlsProfile.TLS13
    outbox_path: Path = Path("ven-outbox.sqlite")
    # None: the VTN's oadrRequestedOadrPollFreq
    poll_interval: timedelta | None = None
    request_timeout: timedelta = timedelta(seconds=30)
    mode: TransportMode = TransportMode.PULL
    push_host: str = "127.0.0.1"
    push_port: int = 0
    # the transport address announced to the VTN; default https://push_host:push_port
    push_url: str | None = None
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_cap: timedelta = timedelta(minutes=5)
    opt: str = "optIn"  # the answer to every event when no application handler is plugged in
    # [signatures]: sign what the VEN sends (with signing_cert/key, default the TLS pair); verify
    # the VTN's signed payloads against trusted_signers; require: refuse unsigned VTN payloads
    sign_payloads: bool = False
    signing_cert: Path | None = None
    signing_key: Path | None = None
    trusted_signers: tuple[Path, ...] = ()
    require_signatures: bool = False
    replay_window: timedelta = timedelta(minutes=5)

    @property
    def transport_address(self) -> str | None:
        """What oadrCreatePartyRegistration announces: the push URL, or None in pull mode."""
        if self.mode is TransportMode.PULL:
            return None
        return self.push_url or f"https://{self.push_host}:{self.push_port}"

    def __post_init__(self) -> None:
        if not self.vtn_url.startswith(("https://", "http://")):
            raise ConfigError(f"vtn_url must be an http(s) URL, not {self.vtn_url!r}")
        if not self.ven_name:
            raise ConfigError("ven_name must not be empty")
        if self.opt not in ("optIn", "optOut"):
            raise ConfigError(f"opt must be 'optIn' or 'optOut', not {self.opt!r}")
        if self.poll_interval is not None and self.poll_interval <= timedelta(0):
            raise ConfigError("poll_interval_s must be positive")
        if not 0 <= self.push_port <= 65535:
            raise ConfigError(f"push port {self.push_port} is out of range")
        if self.require_signatures and not self.trusted_signers:
            raise ConfigError("signatures.require needs signatures.trusted to verify with")
        if self.mode is TransportMode.PUSH and self.push_port == 0:
            # The VTN must be told a fixed address before the listener could report its port.
            raise ConfigError("mode = \"push\" needs [push] port (the VTN is told where to POST)")


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.pop(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return dict(value)


def _seconds(value: Any, key: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number of seconds, not {value!r}")
    return timedelta(seconds=float(value))


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, not {value!r}")
    return value


def _tls_values(tls: dict[str, Any], base: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in ("cert", "key", "ca"):
        if key in tls:
            values[f"tls_{key}"] = (base / _string(tls.pop(key), f"tls.{key}")).resolve()
    if "profile" in tls:
        try:
            values["tls_profile"] = TlsProfile(tls.pop("profile"))
        except ValueError as exc:
            raise ConfigError(f"tls.profile: {exc}") from None
    return values


def _push_values(push: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "host" in push:
        values["push_host"] = _string(push.pop("host"), "push.host")
    if "port" in push:
        port = push.pop("port")
        if isinstance(port, bool) or not isinstance(port, int):
            raise ConfigError(f"push.port must be an integer, not {port!r}")
        values["push_port"] = port
    if "url" in push:
        values["push_url"] = _string(push.pop("url"), "push.url")
    return values


def _signature_values(table: dict[str, Any], base: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, name in (("sign", "sign_payloads"), ("require", "require_signatures")):
        if key in table:
            flag = table.pop(key)
            if not isinstance(flag, bool):
                raise ConfigError(f"signatures.{key} must be true or false, not {flag!r}")
            values[name] = flag
    for key in ("cert", "key"):
        if key in table:
            values[f"signing_{key}"] = (base / _string(table.pop(key), f"signatures.{key}")
                                        ).resolve()
    if "trusted" in table:
        trusted = table.pop("trusted")
        if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
            raise ConfigError("signatures.trusted must be a list of PEM file paths")
        values["trusted_signers"] = tuple((base / t).resolve() for t in trusted)
    if "replay_window_s" in table:
        values["replay_window"] = _seconds(table.pop("replay_window_s"),
                                           "signatures.replay_window_s")
    return values


def parse_config(data: dict[str, Any], *, base: Path = Path(".")) -> VenConfig:
    """Build a VenConfig from parsed TOML (top-level keys plus [tls], [push], [backoff],
    [signatures])."""
    data = dict(data)
    tls, push, backoff, signatures = (_section(data, n)
                                      for n in ("tls", "push", "backoff", "signatures"))
    values = _tls_values(tls, base)
    values.update(_signature_values(signatures, base))
    has_push_table = bool(push)
    values.update(_push_values(push))
    for key, name in (("base_s", "backoff_base"), ("cap_s", "backoff_cap")):
        if key in backoff:
            values[name] = _seconds(backoff.pop(key), f"backoff.{key}")
    for key in ("vtn_url", "ven_name", "opt"):
        if key in data:
            values[key] = _string(data.pop(key), key)
    if "outbox" in data:
        values["outbox_path"] = (base / _string(data.pop("outbox"), "outbox")).resolve()
    for key, name in (("poll_interval_s", "poll_interval"),
                      ("request_timeout_s", "request_timeout")):
        if key in data:
            values[name] = _seconds(data.pop(key), key)
    if "mode" in data:
        try:
            values["mode"] = TransportMode(data.pop("mode"))
        except ValueError:
            raise ConfigError("mode must be 'pull' or 'push'") from None
    leftovers = {f"tls.{k}" for k in tls} | {f"push.{k}" for k in push}
    leftovers |= {f"backoff.{k}" for k in backoff} | {f"signatures.{k}" for k in signatures}
    leftovers |= set(data)
    if leftovers:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(leftovers))}")
    for required in ("vtn_url", "ven_name"):
        if required not in values:
            raise ConfigError(f"{required} is required")
    if has_push_table and values.get("mode", TransportMode.PULL) is not TransportMode.PUSH:
        raise ConfigError("[push] is only for mode = \"push\"")
    return VenConfig(**values)


def load_config(path: Path) -> VenConfig:
    """Read and check a VEN TOML file."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, base=path.parent)


def wire_codec(config: VenConfig) -> Codec:
    """The codec ``config`` asks for: signing what the VEN sends and verifying what the VTN
    signs, with a replay window on the VTN's payloads (a plain codec when all is off)."""
    signer = None
    if config.sign_payloads:
        cert, key = config.signing_cert or config.tls_cert, config.signing_key or config.tls_key
        if cert is None or key is None:
            raise ConfigError("signatures.sign needs a certificate and key ([tls] or cert/key)")
        signer = Signer.from_files(key, cert)
    verifier = (Verifier.from_files(*config.trusted_signers, purpose=Purpose.SERVER)
                if config.trusted_signers else None)
    replay = ReplayGuard(window=config.replay_window) if verifier is not None else None
    return Codec(signer=signer, verifier=verifier, replay=replay,
                 require_signature=config.require_signatures)
