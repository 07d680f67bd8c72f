"""crowdflex VEN client: what an OEM embeds to take part in OpenADR 2.0b demand response.

A VEN registers with its VTN, polls (or takes pushes), answers events with optIn/optOut, offers
and sends reports through a durable outbox, and sends opt schedules::

    import asyncio
    from schemas import OptType, ReportDescription, ReportInterval, ReportPayload, ReportType
    from schemas import ReadingType
    from ven import Connection, Hooks, Outbox, VenClient, VenSettings
    from ven.tls import client_context

    def on_event(event):                         # plain or async; called once per event version
        return OptType.OPT_IN

    async def main():
        tls = client_context(cert="ven.crt", key="ven.key", ca="ca.crt")
        settings = VenSettings(
            ven_name="heat-pump-42",
            connection=Connection(vtn_url="https://vtn.example:8443", ssl_context=tls),
            hooks=Hooks(on_event=on_event),
        )
        async with await Outbox.open("ven-outbox.sqlite") as outbox, VenClient(
            settings, outbox=outbox,
        ) as ven:
            await ven.register()
            requests = await ven.register_reports((ReportDescription(
                r_id="meter", report_type=ReportType.USAGE,
                reading_type=ReadingType.DIRECT_READ),))
            polling = ven.start_polling()            # polls again at once while the VTN has more
            for request in requests:                 # queued durably; sent in order, exactly once
                await ven.send_report(request.report_request_id, (ReportInterval(
                    payloads=(ReportPayload(r_id="meter", value=1.5),)),))
            await polling

    asyncio.run(main())

Reports the VTN offers (its own oadrRegisterReport) arrive in ``ven.vtn.metadata``; request one
at once with the hook ``request_vtn_reports`` (METADATA -> ReportRequests) or later with
``await ven.vtn.request_report(report_specifier_id)``, and take its data with the hook
``on_report_data`` (plain or async, one call per report; the VTN gets oadrUpdatedReport).

One process may talk to several VTNs: one :class:`VenClient` each, sharing one :class:`Outbox`.
Its errors, under the message layer's root::

    CrowdflexError (schemas)
    +-- VenError                  the VEN client's errors about its VTN (ven.errors)
        +-- VtnUnavailable        transport failure: no connection, TLS failure, timeout, HTTP
        |                         5xx, HTTP 429; worth retrying (the poll loop and the outbox back
        |                         off with :class:`Backoff` and retry, for at least the VTN's
        |                         Retry-After when it sent one)
        +-- VtnRefused            the VTN answered and said no: an OpenADR response code other
            |                     than 2xx, an HTTP 4xx, or a registration without a venID;
            |                     retrying the same bytes will not help
            +-- XmppRefused       an XMPP error stanza (other than of type wait), by condition

A configuration file the VEN cannot take is a ``tomlconfig.ConfigError``.
"""

from __future__ import annotations

from ._http import read_capped
from .backoff import Backoff
from .client import EventHandler, Outcome, Registration, VenClient
from .errors import ErrorHandler, VenError, VtnRefused, VtnUnavailable, XmppRefused
from .offered import ReportChooser, ReportDataHandler, VtnReports
from .outbox import Outbox, OutboxItem
from .push import PushReceiver
from .reports import AcceptedReport, ReportProvider, metadata_report
from .settings import Connection, Hooks, Sleep, TimeSource, VenSettings

__all__ = [
    "AcceptedReport",
    "Backoff",
    "Connection",
    "ErrorHandler",
    "EventHandler",
    "Hooks",
    "Outbox",
    "OutboxItem",
    "Outcome",
    "PushReceiver",
    "Registration",
    "ReportChooser",
    "ReportDataHandler",
    "ReportProvider",
    "Sleep",
    "TimeSource",
    "VenClient",
    "VenError",
    "VenSettings",
    "VtnRefused",
    "VtnReports",
    "VtnUnavailable",
    "XmppRefused",
    "metadata_report",
    "read_capped",
]
