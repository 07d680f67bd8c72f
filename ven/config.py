"""Loading a :class:`VenConfig` from TOML (``examples/ven.toml`` documents every key), and the
client settings it describes (:func:`client_settings`).

Mirrors :mod:`vtn.config`, through the same typed loader (:mod:`tomlconfig`). Invariants: unknown
keys are an error (a typo must not silently fall back to a default), and every error names the
file, the key and what is expected; durations are given in seconds (``*_s`` keys); paths are
relative to the TOML file's directory, and the certificate and key files must exist;
``mode = "push"`` needs a ``[push]`` listener, and pull mode refuses one (a listener nobody
announces would be an open port for nothing); requiring signed VTN payloads needs certificates
to verify them with.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas import Codec, ReplayGuard, Signer, Verifier
from schemas.certpath import Purpose
from schemas.identity import TlsProfile, fingerprint_from_pem
from tomlconfig import ConfigError, Table, read_file

from .backoff import Backoff
from .settings import Connection, Hooks, VenSettings
from .tls import client_context

if TYPE_CHECKING:  # slixmpp is imported by a VEN on XMPP only, when its link is built
    from .xmpp import XmppLink

__all__ = [
    "ConfigError", "TransportMode", "VenConfig", "VenXmpp", "client_settings", "load_config",
    "parse_config", "tls_files", "wire_codec", "xmpp_from_table",
]


class TransportMode(StrEnum):
    """How the VTN's payloads reach the VEN (OpenADR 2.0b profile 9.1: simpleHttp pull or push;
    9.3: XMPP, where the VTN sends them through the XMPP server)."""

    PULL = "pull"
    PUSH = "push"
    XMPP = "xmpp"


@dataclass(frozen=True, slots=True, kw_only=True)
class VenXmpp:
    """``[xmpp]``: the XMPP server and the VTN's JID there (``ven.xmpp.XmppLink``)."""

    vtn_jid: str
    host: str = "127.0.0.1"
    port: int = 5222
    domain: str = "localhost"
    resource: str = "ven"

    def link(self, *, fingerprint: str, ssl_context: ssl.SSLContext, codec: Codec,
             request_timeout_s: float) -> XmppLink:
        """The :class:`ven.xmpp.XmppLink` to this server for the VEN whose certificate (the one
        in ``ssl_context``) has ``fingerprint``; build it inside the event loop."""
        from .xmpp import XmppLink

        return XmppLink(host=self.host, port=self.port, domain=self.domain, vtn_jid=self.vtn_jid,
                        fingerprint=fingerprint, ssl_context=ssl_context, codec=codec,
                        resource=self.resource, request_timeout_s=request_timeout_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class VenConfig:
    """Everything a ``crowdflex ven`` deployment can set."""

    vtn_url: str = ""  # required but in mode = "xmpp", which names the VTN by [xmpp] vtn_jid
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
    xmpp: VenXmpp | None = None  # with mode = "xmpp"

    @property
    def transport_address(self) -> str | None:
        """What oadrCreatePartyRegistration announces: the push URL, or None in pull mode."""
        if self.mode is not TransportMode.PUSH:
            return None
        return self.push_url or f"https://{self.push_host}:{self.push_port}"

    def __post_init__(self) -> None:
        if (self.mode is TransportMode.XMPP) != (self.xmpp is not None):
            raise ConfigError('mode = "xmpp" goes with an [xmpp] table, and only with it')
        if self.mode is not TransportMode.XMPP and not self.vtn_url.startswith(
                ("https://", "http://")):
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


def _tls_values(tls: Table) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in ("cert", "key", "ca"):
        if tls.has(key):
            values[f"tls_{key}"] = tls.path(key, exists=True)
    if tls.has("profile"):
        values["tls_profile"] = tls.choice("profile", TlsProfile)
    return values


def _push_values(push: Table) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if push.has("host"):
        values["push_host"] = push.string("host")
    if push.has("port"):
        values["push_port"] = push.integer("port", low=1, high=65535)
    if push.has("url"):
        values["push_url"] = push.string("url")
    return values


def xmpp_from_table(table: Table) -> VenXmpp:
    """The ``[xmpp]`` table of a VEN's (or a device fleet's) TOML."""
    values: dict[str, Any] = {}
    for key in ("vtn_jid", "host", "domain", "resource"):
        if table.has(key):
            values[key] = table.string(key)
    if table.has("port"):
        values["port"] = table.integer("port", low=1, high=65535)
    if "vtn_jid" not in values:
        raise table.error("vtn_jid", "the VTN's full JID, e.g. "
                          '"<its fingerprint digits>@xmpp.example/openadr"')
    return VenXmpp(**values)


def _signature_values(table: Table) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, name in (("sign", "sign_payloads"), ("require", "require_signatures")):
        if table.has(key):
            values[name] = table.flag(key)
    for key in ("cert", "key"):
        if table.has(key):
            values[f"signing_{key}"] = table.path(key, exists=True)
    if table.has("trusted"):
        values["trusted_signers"] = table.paths("trusted", exists=True)
    if table.has("replay_window_s"):
        values["replay_window"] = table.seconds("replay_window_s")
    return values


def parse_config(data: dict[str, Any], *, base: Path = Path("."),
                 source: str = "configuration") -> VenConfig:
    """Build a VenConfig from parsed TOML (top-level keys plus [tls], [push], [xmpp],
    [backoff], [signatures]); ``source`` names the file in errors."""
    root = Table(data, source=source, base=base)
    values = _tls_values(root.table("tls"))
    values.update(_signature_values(root.table("signatures")))
    push = root.table("push")
    has_push_table = bool(push)
    values.update(_push_values(push))
    xmpp = root.table("xmpp")
    if xmpp:
        values["xmpp"] = xmpp_from_table(xmpp)
    backoff = root.table("backoff")
    for key, name in (("base_s", "backoff_base"), ("cap_s", "backoff_cap")):
        if backoff.has(key):
            values[name] = backoff.seconds(key)
    for key in ("vtn_url", "ven_name", "opt"):
        if root.has(key):
            values[key] = root.string(key)
    if root.has("outbox"):
        values["outbox_path"] = root.path("outbox")
    for key, name in (("poll_interval_s", "poll_interval"),
                      ("request_timeout_s", "request_timeout")):
        if root.has(key):
            values[name] = root.seconds(key)
    if root.has("mode"):
        values["mode"] = root.choice("mode", TransportMode)
    root.finish()
    needed = ("ven_name",) if values.get("mode") is TransportMode.XMPP else ("vtn_url",
                                                                               "ven_name")
    for required in needed:
        if required not in values:
            raise ConfigError(f"{source}: {required} is required")
    if has_push_table and values.get("mode", TransportMode.PULL) is not TransportMode.PUSH:
        raise root.error("push", 'mode = "push" beside a [push] listener (pull mode '
                         "announces none)")
    try:
        return VenConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: Path) -> VenConfig:
    """Read and check a VEN TOML file; errors name the file."""
    return parse_config(read_file(path), base=path.parent, source=str(path))


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


def tls_files(config: VenConfig) -> tuple[Path, Path, Path]:
    """The ``[tls]`` cert, key and CA files; :class:`ConfigError` when one is not given."""
    cert, key, ca = config.tls_cert, config.tls_key, config.tls_ca
    if cert is None or key is None or ca is None:
        raise ConfigError("[tls] cert, key and ca are required")
    return cert, key, ca


def client_settings(config: VenConfig, *, codec: Codec, hooks: Hooks) -> VenSettings:
    """The :class:`ven.VenSettings` ``config`` describes, with ``codec`` (:func:`wire_codec`)
    and the application's ``hooks``. The ``[tls]`` files are required: the client's mutual-TLS
    context is made from them. In ``mode = "xmpp"`` the connection's link is an
    :class:`ven.xmpp.XmppLink` to ``[xmpp]``, so call this inside the event loop."""
    cert, key, ca = tls_files(config)
    tls = client_context(cert=cert, key=key, ca=ca, profile=config.tls_profile)
    timeout = config.request_timeout.total_seconds()
    xmpp, vtn, link = config.xmpp, config.vtn_url, None
    if xmpp is not None:  # the VTN is named by its JID, unless vtn_url names it too
        vtn = vtn or xmpp.vtn_jid
        link = xmpp.link(fingerprint=fingerprint_from_pem(cert.read_bytes()), ssl_context=tls,
                         codec=codec, request_timeout_s=timeout)
    connection = Connection(
        vtn_url=vtn,
        ssl_context=tls, codec=codec, link=link, push_url=config.transport_address,
        request_timeout=timeout,
        poll_interval=config.poll_interval.total_seconds() if config.poll_interval else None,
        backoff=Backoff(base=config.backoff_base.total_seconds(),
                        cap=config.backoff_cap.total_seconds()))
    return VenSettings(ven_name=config.ven_name, connection=connection, hooks=hooks)
