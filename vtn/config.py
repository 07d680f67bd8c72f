"""Loading a :class:`~vtn.settings.VtnConfig` from TOML (``examples/vtn.toml`` documents every key).

Invariants: unknown keys are an error (a typo must not silently fall back to a default), and every
error names the file, the key and what is expected (:mod:`tomlconfig`); durations are given in
seconds (``*_s`` keys), paths relative to the TOML file's directory, and the certificate files
must exist when the file is read. The admin token may come from the environment
(``[admin] token_env``) so it stays out of files; a token shorter than
:data:`~vtn.admin.MIN_TOKEN_CHARS` is refused, and :func:`load_config` (the ``crowdflex vtn``
command's loader) refuses a missing one while the admin API is on: all before anything starts.
``[signatures]`` becomes a :class:`~vtn.signing.SignatureSettings`; a combination it cannot serve
(requiring signatures without trusted certificates to check them) is refused here, at load time.
"""

from __future__ import annotations

import dataclasses
import os
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Final, get_type_hints

from schemas.identity import TlsProfile
from tomlconfig import ConfigError, Table, plain_type, read_file
from vtn.admin import MIN_TOKEN_CHARS
from vtn.pushtargets import PushTargets
from vtn.settings import VtnConfig, XmppSettings
from vtn.signing import SignatureSettings

__all__ = ["ConfigError", "load_config", "parse_config"]


_PATHS = ("cert", "key", "ca", "crl")
_DURATIONS = {
    "poll_frequency_s": "poll_frequency",
    "default_report_granularity_s": "default_report_granularity",
    "cancelled_event_retention_s": "cancelled_event_retention",
}
_MAX_PORT: Final = 65535
_MAX_XMPP_SESSIONS: Final = 16  # [xmpp] sessions: each is a TLS connection the server keeps
# top-level keys that are VtnConfig fields of one plain TOML type (str, int, float, bool)
_PLAIN: Final = {name: hint for name, hint in get_type_hints(VtnConfig).items()
                 if plain_type(hint) is not None}


def parse_config(data: dict[str, Any], *, base: Path = Path("."),
                 source: str = "configuration", section: str = "") -> VtnConfig:
    """Build a VtnConfig from parsed TOML (top-level keys plus [tls], [admin], [push], [reports],
    [signatures]); errors name ``source`` (the file) and each key, under ``section`` when the
    VTN's keys are a table of a larger file (``[vtn]`` of a CBP role's)."""
    root = Table(data, source=source, base=base, name=section)
    values: dict[str, Any] = {}
    tls = root.table("tls")
    for key in _PATHS:
        if tls.has(key):
            values[f"tls_{key}"] = tls.path(key, exists=True)
    if tls.has("profile"):
        values["tls_profile"] = tls.choice("profile", TlsProfile)
    values.update(_admin_values(root.table("admin")))
    signatures = root.table("signatures")
    if signatures:
        values["signatures"] = _signature_settings(signatures)
    push = root.table("push")
    if push.has("allow_private_targets"):
        values["push_allow_private_targets"] = _networks(push)
    xmpp = root.table("xmpp")
    if xmpp:
        values["xmpp"] = _xmpp_settings(xmpp)
    reports = root.table("reports")
    if reports.has("auto_subscribe"):
        values["auto_subscribe_reports"] = reports.strings("auto_subscribe")
    if reports.has("default_granularity_s"):
        values["default_report_granularity"] = reports.seconds("default_granularity_s")
    if root.has("allowed_fingerprints"):
        values["allowed_fingerprints"] = frozenset(root.strings("allowed_fingerprints"))
    values.update(_proxy(root))
    for key, name in _DURATIONS.items():
        if root.has(key):
            values[name] = root.seconds(key)
    for key in ("port", "admin_port"):
        if root.has(key):
            values[key] = root.integer(key, high=_MAX_PORT)
    if root.has("admin_token"):
        values["admin_token"] = _token(root, "admin_token")
    for key, hint in _PLAIN.items():
        if root.has(key) and key not in values:
            values[key] = root.typed(key, hint)
    root.finish()
    _check_positive(root, values)
    if "storage_url" in values:
        values["storage_url"] = _relative_sqlite(str(values["storage_url"]), base)
    return VtnConfig(**values)


def _admin_values(admin: Table) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if admin.has("enabled"):
        values["admin_enabled"] = admin.flag("enabled")
    if admin.has("host"):
        values["admin_host"] = admin.string("host")
    if admin.has("port"):
        values["admin_port"] = admin.integer("port", high=_MAX_PORT)
    if admin.has("token_env"):
        env = admin.string("token_env")
        token = os.environ.get(env)
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise admin.error("token_env", f"the environment variable {env} to hold a bearer "
                              f"token of at least {MIN_TOKEN_CHARS} characters, not "
                              f"{len(token)}")
        values["admin_token"] = token
    if admin.has("token"):
        values["admin_token"] = _token(admin, "token")
    return values


def _xmpp_settings(table: Table) -> XmppSettings:
    """[xmpp] -> XmppSettings (unknown keys are left for Table.finish)."""
    values: dict[str, Any] = {}
    for key in ("host", "domain", "resource"):
        if table.has(key):
            values[key] = table.string(key)
    if table.has("port"):
        values["port"] = table.integer("port", low=1, high=_MAX_PORT)
    if table.has("max_sends_in_flight"):
        values["max_sends_in_flight"] = table.integer("max_sends_in_flight", low=1)
    if table.has("sessions"):
        values["sessions"] = table.integer("sessions", low=1, high=_MAX_XMPP_SESSIONS)
    for key in ("connect_timeout_s", "request_timeout_s", "reconnect_s", "keepalive_s"):
        if table.has(key):
            values[key] = table.number(key, positive=True)
    return XmppSettings(**values)


def _networks(push: Table) -> tuple[str, ...]:
    """[push] allow_private_targets: CIDR networks a push may go to although private."""
    networks = push.strings("allow_private_targets")
    try:
        PushTargets.allowing(networks)
    except ValueError as exc:
        raise push.error("allow_private_targets",
                         f'a list of networks such as "10.0.0.0/8" ({exc})') from None
    return networks


def _token(table: Table, key: str) -> str:
    token = table.string(key)
    if len(token) < MIN_TOKEN_CHARS:
        raise table.error(key, f"a bearer token of at least {MIN_TOKEN_CHARS} characters, not "
                          f"{len(token)}")
    return token


def _check_positive(root: Table, values: dict[str, Any]) -> None:
    # keepalive_timeout 0 would switch aiohttp's only idle/slow-header deadline off altogether,
    # and a lock or statement timeout of 0 PostgreSQL's.
    for key in ("keepalive_timeout_s", "tls_handshake_timeout_s", "max_connections",
                "max_connections_per_peer", "max_pending_handshakes",
                "max_pending_handshakes_per_address", "crl_check_interval_s",
                "max_line_size", "max_field_size", "max_headers", "database_lock_timeout_s",
                "database_statement_timeout_s"):
        value = values.get(key)
        if value is not None and value <= 0:
            raise root.error(key, "a positive number", value)


def _proxy(root: Table) -> dict[str, Any]:
    """trusted_cert_header and the proxy it is honoured from; the header alone is refused (any
    VEN could then name itself any other VEN)."""
    values: dict[str, Any] = {}
    if root.has("trusted_proxy_fingerprints"):
        values["trusted_proxy_fingerprints"] = frozenset(
            root.strings("trusted_proxy_fingerprints"))
    if root.has("trusted_proxy_addresses"):
        addresses = root.strings("trusted_proxy_addresses")
        for address in addresses:
            try:
                ip_network(address)
            except ValueError as exc:
                raise root.error("trusted_proxy_addresses",
                                 f'addresses or networks such as "10.0.0.5" ({exc})') from None
        values["trusted_proxy_addresses"] = addresses
    if root.has("trusted_cert_header") and not values:
        raise root.error("trusted_cert_header", "trusted_proxy_fingerprints or "
                         "trusted_proxy_addresses beside it: the header is honoured only from "
                         "the proxy")
    return values


def _signature_settings(table: Table) -> SignatureSettings:
    """[signatures] -> SignatureSettings (unknown keys are left for Table.finish)."""
    values: dict[str, Any] = {}
    if table.has("trusted"):
        values["trusted"] = table.paths("trusted", exists=True)
    for key in ("require", "sign_replies", "bind_to_peer"):
        if table.has(key):
            values[key] = table.flag(key)
    for key, name in (("replay_window_s", "replay_window"), ("max_future_s", "replay_max_future")):
        if table.has(key):
            values[name] = table.seconds(key)
    settings = SignatureSettings(**values)
    if settings.require and not settings.verifies:
        raise table.error("require", "signatures.trusted beside it (certificates to verify "
                          "signatures with)")
    return settings


def _relative_sqlite(url: str, base: Path) -> str:
    """``sqlite:///vtn.db`` in a config file means next to that file, not the working dir."""
    prefix, _, path = url.partition(":///")
    if not prefix.startswith("sqlite") or not path or Path(path).is_absolute():
        return url
    return f"{prefix}:///{(base / path).resolve()}"


def load_config(path: Path, *, admin: bool = True) -> VtnConfig:
    """Read and check a VTN TOML file, as ``crowdflex vtn`` serves it. ``admin=False``
    (``--no-admin``) turns the admin API off; left on (and not ``[admin] enabled = false``), it
    needs its token, so a missing one is refused here, naming where it was looked for."""
    data = read_file(path)
    config = parse_config(data, base=path.parent, source=str(path))
    token_env = data.get("admin", {}).get("token_env")  # parse_config checked its type
    if not admin:
        return dataclasses.replace(config, admin_enabled=False)
    if config.admin_enabled and config.admin_token is None:
        where = (f"the environment variable {token_env} (named by [admin] token_env) is not set"
                 if isinstance(token_env, str) else "neither [admin] token_env nor token is set")
        raise ConfigError(f"{path}: the admin API needs a bearer token of at least "
                          f"{MIN_TOKEN_CHARS} characters, but {where}; export it, or run with "
                          "--no-admin")
    return config
