"""The VEN-side suite against openleadr's VEN (``OpenADRClient``, an independent implementation):
which cases fail, and why, is pinned here, so a change on either side shows."""

from __future__ import annotations

import logging
from datetime import timedelta

from openleadr import OpenADRClient

from cbp.conformance import VenHarnessSettings, run_ven_cases
from cbp.pki import KeyType

from .conftest import key_pki


class OpenleadrVen:
    """openleadr's client, opting in to every event and offering one TELEMETRY_USAGE report."""

    def __init__(self, pki) -> None:
        self.pki = pki
        self.client: OpenADRClient | None = None

    async def start(self, url: str) -> None:
        client = OpenADRClient(ven_name="openleadr-ven", vtn_url=url, cert=str(self.pki.ven.cert),
                               key=str(self.pki.ven.key), ca_file=str(self.pki.ca_cert),
                               show_fingerprint=False)
        client.add_report(callback=lambda: 1.5, resource_id="device-1",
                          measurement="power_real", sampling_rate=timedelta(seconds=1),
                          report_duration=timedelta(hours=1))

        async def on_event(event):
            return "optIn"

        client.add_handler("on_event", on_event)
        self.client = client
        await client.run()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.stop()


# case -> a fragment of the reason the suite gives
EXPECTED_FAILURES: dict[str, str] = {}


async def test_openleadr_ven_fails_exactly_the_pinned_cases(tmp_path, caplog):
    caplog.set_level(logging.CRITICAL, logger="openleadr")
    pki = key_pki(tmp_path, KeyType.EC)
    settings = VenHarnessSettings(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert,
                                  poll_freq_s=1, report_back_s=1, wait_timeout_s=10)
    results = await run_ven_cases(settings, OpenleadrVen(pki))
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert sorted(failures) == sorted(EXPECTED_FAILURES), failures
    wrong = {case_id: reason for case_id, reason in failures.items()
             if EXPECTED_FAILURES[case_id] not in reason}
    assert not wrong
