"""The foundation demo: one VTN and one VEN exchange every OpenADR 2.0b service over mutual TLS.

What happens, in order, on 127.0.0.1 with an ephemeral port:
1. a development PKI (CA, VTN and VEN certificates) is minted into ``OUT/certs`` (never committed);
2. our VTN starts on a SQLite file ``OUT/vtn.db``; every request and reply is kept under
   ``OUT/captures/ven-vtn/``;
3. our VEN registers (venID = its certificate fingerprint) and offers a TELEMETRY_USAGE report;
4. the VTN publishes a LOAD_DISPATCH setpoint event; the VEN receives it by polling and opts in;
5. the VEN sends telemetry through its durable outbox; the VTN stores it.
Each step is awaited on an event with a timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from cbp.pki import CertificateAuthority, Role
from schemas import (
    ActivePeriod,
    Event,
    EventDescriptor,
    EventInterval,
    EventResponse,
    EventSignal,
    EventStatus,
    ItemBase,
    OptType,
    ReadingType,
    Report,
    ReportDescription,
    ReportInterval,
    ReportPayload,
    ReportType,
    SamplingRate,
    SignalType,
    Target,
)
from ven import Outbox, VenClient
from ven.tls import client_context
from vtn.app import SERVICES, VtnConfig, create_app, server_ssl_context
from vtn.capture import capture_middleware
from vtn.services import Handlers
from vtn.services.events import publish_event

__all__ = ["ExchangeSummary", "run_exchange"]

_STEP_TIMEOUT_S = 30.0
_TELEMETRY_SAMPLES = 15  # one minute of 4-s samples


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeSummary:
    out_dir: Path
    ven_id: str
    event_id: str
    ack: OptType
    telemetry_points: int
    captured_messages: int


@dataclass(slots=True)
class _Observed:
    """What the VTN's application hooks saw; each step awaits one of these events."""

    acked: asyncio.Event
    reported: asyncio.Event
    ack: OptType | None = None
    points: int = 0

    def on_event_response(self, ven_id: str, response: EventResponse) -> None:
        self.ack = response.opt_type
        self.acked.set()

    def on_report_data(self, ven_id: str, report: Report) -> None:
        self.points += sum(len(interval.payloads) for interval in report.intervals)
        if self.points >= _TELEMETRY_SAMPLES:
            self.reported.set()


def _mint_pki(folder: Path) -> dict[str, tuple[Path, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority.create(common_name="crowdflex demo CA")
    files = {"ca": authority.write(folder, force=True)}
    for name, role in (("vtn", Role.VTN), ("ven", Role.VEN)):
        files[name] = authority.issue(name, role).write(folder, force=True)
    return files


def _activation(now: datetime, ven_id: str) -> Event:
    """A LOAD_DISPATCH setpoint (MW) ramping 1-2-3-2-1 over five 1-minute intervals."""
    start = now.replace(microsecond=0) + timedelta(minutes=1)
    return Event(
        descriptor=EventDescriptor(
            event_id="demo-activation-1", modification_number=0, market_context="http://cbp.demo/afrr",
            created_date_time=now, event_status=EventStatus.FAR,
        ),
        active_period=ActivePeriod(dtstart=start, duration=timedelta(minutes=5)),
        signals=(EventSignal(
            signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT, signal_id="setpoint",
            item_base=ItemBase.megawatts(),
            intervals=tuple(
                EventInterval(uid=str(i), duration=timedelta(minutes=1), values=(float(mw),))
                for i, mw in enumerate((1, 2, 3, 2, 1))
            ),
        ),),
        target=Target(ven_ids=(ven_id,)),
    )


def _telemetry(start: datetime) -> tuple[ReportInterval, ...]:
    return tuple(
        ReportInterval(dtstart=start + timedelta(seconds=4 * k), duration=timedelta(seconds=4),
                       payloads=(ReportPayload(r_id="pool-power", value=9.2 - 0.1 * k),))
        for k in range(_TELEMETRY_SAMPLES)
    )


async def run_exchange(out_dir: Path, *, say: Callable[[str], None] = print) -> ExchangeSummary:
    """Run the exchange described in the module docstring; return what was observed."""
    pki = _mint_pki(out_dir / "certs")
    say(f"[1/5] development PKI written to {out_dir / 'certs'}")
    config = VtnConfig(
        vtn_id="CROWDFLEX-DEMO-VTN", storage_url=f"sqlite:///{out_dir / 'vtn.db'}",
        tls_cert=pki["vtn"][0], tls_key=pki["vtn"][1], tls_ca=pki["ca"][0],
        poll_frequency=timedelta(seconds=1), admin_enabled=False,
    )
    seen = _Observed(acked=asyncio.Event(), reported=asyncio.Event())
    app = create_app(config, handlers=Handlers(on_event_response=seen.on_event_response,
                                               on_report_data=seen.on_report_data))
    captures = out_dir / "captures" / "ven-vtn"
    app.middlewares.append(capture_middleware(captures))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(config))
        await site.start()
        port = runner.addresses[0][1]
        say(f"[2/5] VTN on https://127.0.0.1:{port} (mutual TLS; {config.storage_url})")
        summary = await _run_ven(app, f"https://127.0.0.1:{port}", pki, out_dir, seen, say)
    finally:
        await runner.cleanup()
    return ExchangeSummary(
        out_dir=out_dir, ven_id=summary[0], event_id=summary[1], ack=seen.ack or OptType.OPT_OUT,
        telemetry_points=seen.points, captured_messages=len(list(captures.glob("*.xml"))),
    )


async def _run_ven(app: web.Application, url: str, pki: dict[str, tuple[Path, Path]],
                   out_dir: Path, seen: _Observed, say: Callable[[str], None]) -> tuple[str, str]:
    tls = client_context(cert=pki["ven"][0], key=pki["ven"][1], ca=pki["ca"][0])
    async with await Outbox.open(out_dir / "ven-outbox.db") as outbox, VenClient(
        url, tls, ven_name="demo-ven", outbox=outbox, poll_interval=0.2,
        on_event=lambda event: OptType.OPT_IN,
    ) as ven:
        registration = await ven.register()
        requests = await ven.register_reports((ReportDescription(
            r_id="pool-power", report_type=ReportType.USAGE, reading_type=ReadingType.DIRECT_READ,
            item_base=ItemBase.megawatts(),
            sampling_rate=SamplingRate(min_period=timedelta(seconds=4),
                                       max_period=timedelta(seconds=4)),
        ),))
        say(f"[3/5] VEN registered as {registration.ven_id}; {len(requests)} report request(s)")
        polling = ven.start_polling()
        event = _activation(datetime.now(UTC), registration.ven_id)
        await publish_event(app[SERVICES], event)
        async with asyncio.timeout(_STEP_TIMEOUT_S):
            await seen.acked.wait()
        say(f"[4/5] event {event.descriptor.event_id} delivered by poll; VEN answered {seen.ack}")
        for request in requests:
            await ven.send_report(request.report_request_id, _telemetry(datetime.now(UTC)))
        async with asyncio.timeout(_STEP_TIMEOUT_S):
            await seen.reported.wait()
        say(f"[5/5] {seen.points} telemetry samples stored by the VTN")
        polling.cancel()
        return registration.ven_id, event.descriptor.event_id
