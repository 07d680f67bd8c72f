"""The aggregator's VEN towards the TSO: a :class:`ven.VenClient` with two CBP answers more.

What the TSO sends is dispatched by the client as usual, except:
- an oadrDistributeEvent carrying an event version older than one the aggregator already
  handled (a stale copy of an activation the TSO has since modified or cancelled) is refused
  as a whole with an oadrResponse of code 450 (:class:`schemas.OutOfSequence`, out of sequence)
  and changes nothing: no handler runs, the event set stays as it was;
- an oadrUpdateReport from the TSO carrying ``x-SETTLEMENT`` (the report the TSO offered in its
  own oadrRegisterReport, see :mod:`cbp.roles.statement`) is read into a statement and handed
  to ``on_statement``; a report it cannot read is refused with 454.

Answer to the TSO's oadrUpdateReport: 2.0b has the VEN answer with oadrUpdatedReport, which the
``vtn`` package does not route yet (EiReport has no oadrUpdatedReport handler; it would be 453).
Until it does, the answer is an oadrResponse with the same requestID, which every ``vtn`` service
takes as a VEN's answer to a payload it queued.

Invariants: a refused message changes no state; everything else is the client's own dispatch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from schemas import (
    DistributeEvent,
    EiResponse,
    Event,
    InvalidData,
    Message,
    OutOfSequence,
    Response,
    UpdateReport,
)
from ven import Outcome, VenClient
from ven._http import Service  # the Outcome's service; not exported by ven (see module doc)

from .profile import SETTLEMENT_REPORT
from .statement import ReceivedStatement, parse_statement

__all__ = ["UpstreamClient"]

log = logging.getLogger(__name__)


class UpstreamClient(VenClient):
    """The aggregator's client for its TSO link (stale-copy refusal, x-SETTLEMENT intake)."""

    def __init__(self, *args: Any, stale: Callable[[Event], bool],
                 on_statement: Callable[[ReceivedStatement], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stale = stale
        self._on_statement = on_statement
        self.refused: list[tuple[str, int]] = []  # (message kind, response code) we answered

    def _refusal(self, request_id: str, code: int, description: str, kind: str,
                 service: Service) -> Outcome:
        self.refused.append((kind, code))
        log.warning("refused %s from the TSO with %d: %s", kind, code, description)
        ven_id = self.registration.ven_id if self.registration else None
        return Outcome(reply=Response(response=EiResponse(
            code=code, description=description, request_id=request_id), ven_id=ven_id),
            service=service)

    async def dispatch(self, message: Message) -> Outcome:
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
            case UpdateReport():
                return self._take_reports(message)
        return await super().dispatch(message)

    def _older(self, event: Event) -> bool:
        known = self.events.get(event.event_id)
        return known is not None and event.modification_number < known.modification_number

    def _take_reports(self, message: UpdateReport) -> Outcome:
        offered = {r.report_specifier_id for r in self.vtn_reports}
        for report in message.reports:
            try:
                if str(report.report_name or "") != SETTLEMENT_REPORT:
                    raise ValueError(f"report {report.report_name!r} is not one the TSO offers")
                if report.report_specifier_id not in offered:
                    raise ValueError(f"report {report.report_specifier_id!r} was never offered")
                statement = parse_statement(report)
            except ValueError as exc:
                return self._refusal(message.request_id, InvalidData.response_code, str(exc),
                                     "oadrUpdateReport", Service.REPORT)
            self._on_statement(statement)
        ven_id = self.registration.ven_id if self.registration else None
        return Outcome(reply=Response(response=EiResponse(request_id=message.request_id),
                                      ven_id=ven_id), service=Service.REPORT)
