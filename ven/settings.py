"""What a :class:`ven.VenClient` is built from: one :class:`VenSettings`, in three parts.

- :class:`Connection`: which VTN, how to reach it (TLS, another transport, the push address) and
  at what pace (request timeout, poll interval, back-off);
- :class:`Hooks`: the application's handlers (events, reports, errors);
- :class:`TimeSource`: where "now" comes from and how the client waits, injected by tests.

Invariants: the settings are plain values, frozen, and do nothing; the client reads them once,
when it is built. :func:`ven.config.client_settings` builds them from a ``crowdflex ven`` TOML
file.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from schemas import Codec, utc_now

from ._http import Link
from ._inbound import EventHandler
from .backoff import Backoff
from .errors import ErrorHandler
from .offered import ReportChooser, ReportDataHandler
from .reports import ReportProvider

__all__ = ["Connection", "Hooks", "Sleep", "TimeSource", "VenSettings"]

Sleep = Callable[[float], Awaitable[None]]
"""Wait this many seconds (``asyncio.sleep``, or a test's recorder)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """Which VTN, how to reach it and at what pace.

    ``vtn_url`` is the VTN's root URL (the 2.0b service paths are added); with ``link`` (another
    transport, e.g. ``ven.xmpp.XmppLink``) it only names the VTN, and the link's codec is used.
    ``push_url`` is announced at registration for push mode (None: pull). ``poll_interval``
    (seconds) replaces the VTN's oadrRequestedOadrPollFreq; ``request_timeout`` (seconds) bounds
    every Simple HTTP request.
    """

    vtn_url: str
    ssl_context: ssl.SSLContext | None
    codec: Codec | None = None
    link: Link | None = None
    push_url: str | None = None
    request_timeout: float = 30.0
    poll_interval: float | None = None
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """The application's handlers; each may be left out.

    ``on_event`` answers each new event version, ``report_provider`` makes the data of the
    reports the VTN requested, ``on_report_data`` takes the data of reports the VTN offers,
    ``request_vtn_reports`` chooses which of those to request at once, ``on_error`` hears every
    failure the client retries or drops.
    """

    on_event: EventHandler | None = None
    report_provider: ReportProvider | None = None
    on_report_data: ReportDataHandler | None = None
    request_vtn_reports: ReportChooser | None = None
    on_error: ErrorHandler | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeSource:
    """The client's time: ``clock`` is now (timezone-aware UTC), ``report_sleep`` waits between a
    report's samples, ``retry_sleep`` waits before a retry (poll loop and outbox; None: the poll
    loop's wait ends early when the client closes, the outbox uses ``asyncio.sleep``)."""

    clock: Callable[[], datetime] = utc_now
    report_sleep: Sleep = asyncio.sleep
    retry_sleep: Sleep | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VenSettings:
    """Everything a :class:`ven.VenClient` is built from but its outbox.

    ``ven_name`` is the venName sent at registration; ``outbox_key`` keys this client's items in a
    shared outbox (default: ``connection.vtn_url``).
    """

    ven_name: str
    connection: Connection
    hooks: Hooks = field(default_factory=Hooks)
    time: TimeSource = field(default_factory=TimeSource)
    outbox_key: str | None = None
