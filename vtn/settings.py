"""What a VTN deployment can set: :class:`VtnConfig`, one frozen value.

:func:`vtn.config.load_config` reads it from TOML and :func:`vtn.app.create_app` serves it; both
import it from here, so reading a configuration never loads the application.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from schemas.identity import TlsProfile
from vtn.signing import SignatureSettings

__all__ = ["VtnConfig", "XmppSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class XmppSettings:
    """``[xmpp]``: the XMPP server the VTN serves VENs through beside HTTP (:mod:`vtn.xmpp`).

    The VTN logs in with its own TLS certificate (``[tls]``); the server names it by that
    certificate's fingerprint, so its JID is ``<fingerprint digits>@domain/resource``."""

    host: str = "127.0.0.1"
    port: int = 5222
    domain: str = "localhost"  # the XMPP domain (and the name the server's certificate carries)
    resource: str = "openadr"
    connect_timeout_s: float = 30.0
    request_timeout_s: float = 10.0  # a VEN's answer to a payload the VTN sent it
    max_sends_in_flight: int = 64  # per session: payloads sent and not yet answered
    # connections to the server: VENs send to the first; the VTN's payloads go out over all
    sessions: int = 1
    reconnect_s: float = 5.0
    keepalive_s: float = 60.0  # XMPP ping (XEP-0199) interval


@dataclass(frozen=True, slots=True, kw_only=True)
class VtnConfig:
    """Everything a VTN deployment can set; :func:`vtn.config.load_config` reads it from TOML."""

    vtn_id: str = "CROWDFLEX-VTN"  # openleadr refuses lowercase vtnIDs (452)
    storage_url: str = "sqlite:///vtn.db"
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_crl: Path | None = None
    tls_profile: TlsProfile = TlsProfile.TLS13
    poll_frequency: timedelta = timedelta(seconds=10)
    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 10.0
    # behind a TLS-terminating proxy: the header carrying the VEN's certificate, honoured only on
    # connections from the proxy, known by its certificate or (plain TCP) its source networks
    trusted_cert_header: str | None = None
    trusted_proxy_fingerprints: frozenset[str] = frozenset()
    trusted_proxy_addresses: tuple[str, ...] = ()
    allowed_fingerprints: frozenset[str] | None = None
    auto_subscribe_reports: tuple[str, ...] = ("TELEMETRY_USAGE", "TELEMETRY_STATUS")
    default_report_granularity: timedelta = timedelta(minutes=1)
    cancelled_event_retention: timedelta = timedelta(days=1)
    offer_metadata: bool = True
    push_timeout_s: float = 10.0
    push_retry_s: float = 5.0
    # networks outside the public internet the VTN may push into anyway, e.g. ("10.0.0.0/8",)
    # (vtn/pushtargets.py; TOML: [push] allow_private_targets)
    push_allow_private_targets: tuple[str, ...] = ()
    admin_enabled: bool = True
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    admin_token: str | None = None
    # payload signatures and ReplayProtect (vtn/signing.py); off by default
    signatures: SignatureSettings = field(default_factory=SignatureSettings)
    # Retry-After of the 503 answered while the database is unavailable or full (vtn/faults.py)
    retry_after_s: int = 10
    # PostgreSQL: a statement waiting longer for a lock (a row another transaction holds) is
    # cancelled and its request answered 503 (vtn.storage.StorageBusy), not left to stall
    database_lock_timeout_s: float = 5.0
    # PostgreSQL: a statement running longer than this, whatever it waits for (a hung query, a
    # chain of locks each granted just in time), is cancelled and its request answered 503
    database_statement_timeout_s: float = 30.0
    # request limits (vtn/limits.py): None switches a limit off
    rate_limit_per_s: float | None = 20.0
    rate_limit_burst: int = 100
    max_in_flight: int | None = 1024
    # per-VEN budgets and caps on one document (vtn/limits.py); a budget's rate None: no budget
    byte_budget_per_s: float | None = 256 * 1024
    byte_budget_burst: int = 4 * 1024 * 1024
    cpu_budget_per_s: float | None = 0.1
    cpu_budget_burst_s: float = 1.0
    max_id_chars: int = 512
    max_metadata_reports: int = 100
    max_report_descriptions: int = 5_000
    max_report_points: int = 10_000
    # connection limits (aiohttp's server; see the module docstring). 75 s outlasts the keep-alive
    # of crowdflex's VEN (60 s) and openleadr's (15 s), so they, not we, close idle connections
    # and never race a reused connection being closed under them.
    keepalive_timeout_s: float = 75.0
    # the listening socket (vtn/site.py): TLS handshake deadline, established-connection caps
    # (overall and per certificate), pending-handshake caps (overall and per source address)
    tls_handshake_timeout_s: float = 10.0
    max_connections: int | None = 10_000
    max_connections_per_peer: int | None = 16
    max_pending_handshakes: int | None = 1000
    max_pending_handshakes_per_address: int | None = 64
    # how often the CRL file is looked at to close connections of newly revoked certificates
    crl_check_interval_s: float = 5.0
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 128
    # serve VENs over XMPP too (vtn/xmpp.py); None: HTTP only
    xmpp: XmppSettings | None = None
