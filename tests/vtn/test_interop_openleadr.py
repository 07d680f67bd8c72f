"""Interop: openleadr's VEN (``OpenADRClient``, an independent implementation) against our VTN.

Acceptance line: it registers over mutual TLS, receives an event, answers optIn, and delivers
TELEMETRY_USAGE reports that our VTN stores -- on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from openleadr import OpenADRClient

from schemas import Target
from tests.kit.vtn import running_vtn
from vtn.services import Handlers, events
from vtn.storage import OptType

from .harness import sample_event


async def test_openleadr_ven_registers_opts_in_and_reports(pki, storage_url, caplog):
    caplog.set_level(logging.WARNING, logger="openleadr")
    acked = asyncio.Event()
    reported = asyncio.Event()
    handlers = Handlers(on_event_response=lambda ven_id, response: acked.set(),
                        on_report_data=lambda ven_id, report: reported.set())
    ven_cert = pki.vens[2]
    async with running_vtn(pki, storage_url, handlers=handlers) as vtn:
        client = OpenADRClient(ven_name="openleadr-ven", vtn_url=vtn.url, cert=str(ven_cert.cert),
                               key=str(ven_cert.key), ca_file=str(pki.ca_cert),
                               show_fingerprint=False)
        client.add_report(callback=lambda: 42.5, resource_id="device-1",
                          measurement="power_real", sampling_rate=timedelta(seconds=1),
                          report_duration=timedelta(hours=1))
        received = []

        async def on_event(event):
            received.append(event)
            return "optIn"

        client.add_handler("on_event", on_event)
        started = datetime.now(UTC) - timedelta(minutes=1)
        await client.run()
        try:
            assert client.ven_id == ven_cert.fingerprint
            stored = await vtn.ctx.storage.vens.get(ven_cert.fingerprint)
            assert stored is not None and stored.ven_name == "openleadr-ven"
            (description,) = await vtn.ctx.storage.reports.descriptions(ven_cert.fingerprint)
            assert description.report_name == "METADATA_TELEMETRY_USAGE"

            await events.publish_event(
                vtn.ctx, sample_event("interop-1", Target(ven_ids=(ven_cert.fingerprint,))))
            async with asyncio.timeout(20):
                await acked.wait()
                await reported.wait()

            assert received[0]["event_descriptor"]["event_id"] == "interop-1"
            (delivery,) = await vtn.ctx.storage.events.deliveries("interop-1")
            assert delivery.ack_opt_type is OptType.OPT_IN
            assert delivery.ack_modification_number == 0
            points = await vtn.ctx.storage.reports.points(
                ven_cert.fingerprint, started, datetime.now(UTC) + timedelta(minutes=1))
            assert points and {p.value for p in points} == {42.5}
            assert points[0].report_specifier_id == description.report_specifier_id
            complaints = [r.getMessage() for r in caplog.records
                          if r.name.startswith("openleadr")
                          and (r.levelno >= logging.ERROR or "non-OK" in r.getMessage())]
            assert not complaints, complaints
        finally:
            await client.stop()
