"""The live suite against openleadr's VTN (an independent implementation, from the test
dependencies): which cases fail, and why, is pinned here, so a change on either side shows.

openleadr's ``OpenADRServer`` has API calls to queue and cancel events and nothing else an
operator step needs (modify an event, request or cancel a report, cancel a registration, request
re-registration): :class:`OpenleadrOperator` refuses those steps, and the cases fail saying so.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from openleadr import OpenADRServer

from cbp.conformance import HarnessSettings, OperatorError, Step, StepKind, run_cases
from tests.conformance.openleadr_gaps import EXPECTED_FAILURES
from tests.kit.net import free_port

from ..ven.conftest import VEN_ID, openleadr_vtn


class OpenleadrOperator:
    """Operator steps through openleadr's server API; an event for anyone but the harness VEN
    goes to another VEN's queue (openleadr queues events per venID)."""

    def __init__(self, server: OpenADRServer) -> None:
        self.server = server

    async def perform(self, step: Step) -> None:
        params = step.params
        match step.kind:
            case StepKind.CREATE_EVENT:
                self._add_event(params)
            case StepKind.CANCEL_EVENT:
                self.server.cancel_event(VEN_ID, params["event_id"])
            case _:
                raise OperatorError(f"openleadr's VTN has no API to {step.kind.value}")

    def _add_event(self, params: dict) -> None:
        (signal,) = params["signals"]
        start = datetime.fromisoformat(params["start"])
        intervals = []
        for interval in signal["intervals"]:
            duration = timedelta(seconds=interval["duration_s"])
            intervals.append({"dtstart": start, "duration": duration,
                              "signal_payload": interval["value"]})
            start += duration
        mine = VEN_ID in params["targets"].get("ven_ids", [])
        self.server.add_event(
            ven_id=VEN_ID if mine else "someone-else", signal_name=signal["name"],
            signal_type=signal["type"], intervals=intervals, event_id=params["event_id"],
            market_context=params["market_context"],
            response_required=params["response_required"],
            callback=lambda ven_id, event_id, opt_type: None)


_NO_REPORT_REQUEST = "openleadr's VTN has no API to request_report"


async def test_openleadr_vtn_fails_exactly_the_pinned_cases(pki):
    port = free_port()
    async with openleadr_vtn(pki, port) as server:
        settings = HarnessSettings(
            url=f"https://127.0.0.1:{port}/OpenADR2/Simple/2.0b", cert=pki.ven.cert,
            key=pki.ven.key, ca=pki.ca_cert, wait_timeout_s=5, poll_interval_s=0.2)
        results = await run_cases(settings, OpenleadrOperator(server))
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert sorted(failures) == sorted(EXPECTED_FAILURES), failures
    wrong = {case_id: reason for case_id, reason in failures.items()
             if EXPECTED_FAILURES[case_id] not in reason}
    assert not wrong
