"""The aggregator's VEN towards the TSO: a :class:`ven.VenClient` with two CBP answers more.

What the TSO sends is received by the client as usual, except:
- an oadrDistributeEvent carrying an event version older than one the aggregator already
  handled (a stale copy of an activation the TSO has since modified or cancelled) is refused
  as a whole with an oadrResponse of code 450 (:class:`schemas.OutOfSequence`, out of sequence)
  and changes nothing: no handler runs, the event set stays as it was;
- the TSO's own METADATA: every ``x-SETTLEMENT`` report it offers that this client has not yet
  requested is requested in the oadrRegisteredReport (:func:`cbp.roles.statement.
  settlement_request`); its data, each an oadrUpdateReport for that request, is read into a
  statement and handed to ``on_statement``, answered with oadrUpdatedReport; a report it cannot
  read is answered with 454 (the client's report-data handler contract, :mod:`ven.offered`).

Invariants: a refused message changes no state; everything else the client receives as usual.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from schemas import (
    DistributeEvent,
    EiResponse,
    Event,
    InvalidData,
    Message,
    OutOfSequence,
    Report,
    ReportRequest,
    Response,
    Service,
    UpdatedReport,
    UpdateReport,
    new_id,
)
from schemas.logtext import escaped
from ven import Outbox, Outcome, VenClient, VenSettings

from .profile import SETTLEMENT_REPORT
from .statement import ReceivedStatement, parse_statement, settlement_request

__all__ = ["UpstreamClient"]

log = logging.getLogger(__name__)


class UpstreamClient(VenClient):
    """The aggregator's client for its TSO link (stale-copy refusal, x-SETTLEMENT intake)."""

    def __init__(self, settings: VenSettings, *, outbox: Outbox | None = None,
                 stale: Callable[[Event], bool],
                 on_statement: Callable[[ReceivedStatement], None]) -> None:
        """``settings`` as for any :class:`ven.VenClient`; its report-data and report-choosing
        hooks are this class's own (the x-SETTLEMENT intake)."""
        hooks = dataclasses.replace(settings.hooks, on_report_data=self._take_statement,
                                    request_vtn_reports=self._settlement_requests)
        super().__init__(dataclasses.replace(settings, hooks=hooks), outbox=outbox)
        self._stale = stale
        self._on_statement = on_statement
        self.refused: list[tuple[str, int]] = []  # (message kind, response code) we answered

    def _refusal(self, request_id: str, code: int, description: str, kind: str,
                 service: Service) -> Outcome:
        self.refused.append((kind, code))
        log.warning("refused %s from the TSO with %d: %s", kind, code, escaped(description))
        ven_id = self.registration.ven_id if self.registration else None
        return Outcome(reply=Response(response=EiResponse(
            code=code, description=description, request_id=request_id), ven_id=ven_id),
            service=service)

    async def receive(self, message: Message) -> Outcome:
        match message:
            case DistributeEvent():
                stale = [e for e in message.events if self._stale(e) or self._older(e)]
                if stale:
                    first = stale[0]
                    return self._refusal(
                        message.request_id, OutOfSequence.response_code,
                        f"event {first.event_id} modificationNumber "
                        f"{first.modification_number} is older than one already handled",
                        "oadrDistributeEvent", Service.EVENT)
        return await super().receive(message)

    async def deliver_report(self, report: Report) -> UpdatedReport:
        """Send one oadrUpdateReport now, outside the outbox, and return the TSO's reply: for a
        report whose acknowledgement must be recorded (an erasure notice). Raises
        :class:`ven.VenError` when the TSO refuses it or cannot be reached."""
        assert self.registration is not None
        message = UpdateReport(request_id=new_id(), reports=(report,),
                               ven_id=self.registration.ven_id)
        return await self._link.exchange(Service.REPORT, message, UpdatedReport)

    def _older(self, event: Event) -> bool:
        known = self.events.get(event.event_id)
        return known is not None and event.modification_number < known.modification_number

    def _settlement_requests(self, reports: tuple[Report, ...]) -> list[ReportRequest]:
        asked = {r.report_specifier.report_specifier_id for r in self.vtn.requests.values()}
        return [settlement_request(r, report_request_id=new_id()) for r in reports
                if str(r.report_name or "") == SETTLEMENT_REPORT
                and r.report_specifier_id not in asked]

    def _take_statement(self, report: Report) -> None:
        try:
            if str(report.report_name or "") != SETTLEMENT_REPORT:
                raise ValueError(f"report {report.report_name!r} is not one the TSO offers")
            statement = parse_statement(report)
        except ValueError as exc:
            self.refused.append(("oadrUpdateReport", InvalidData.response_code))
            log.warning("refused report data from the TSO: %s", escaped(exc))
            raise
        self._on_statement(statement)
