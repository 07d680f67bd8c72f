"""Erasure notices over OpenADR: the aggregator delivers them, the TSO acts and acknowledges.

The carrier (OpenADR 2.0b report service, a custom report registered like ``x-FLEX_OFFER``): the
aggregator's METADATA offers an ``x-ERASURE`` report beside its pool (one description, rID
``x-erase``, reportType ``x-erasure``) and the TSO subscribes to it as to every report. A notice
is one oadrUpdateReport of that report: eiReportID = the notice id, one interval per pseudonym to
delete, its ``xcal:uid`` the pseudonym, one payload (rID ``x-erase``, value 1). The TSO's hook
(:class:`ErasureIntake`) deletes every stored row naming one of them (report points,
registrations, requests), drops them from its registry and scrubs its database (deleted content
zeroed, the WAL truncated: :meth:`vtn.storage.Storage.scrub`) *before* it answers; with a
capture folder, every captured message naming one of them (the notice's own capture included)
is deleted before the answer leaves too (:meth:`ErasureIntake.capture_sweep`). Its
oadrUpdatedReport (200) is the acknowledgement the aggregator records in the vault
(``vault.erasure.acknowledge``). A notice the TSO cannot read is answered 454
and stays pending; an unreachable TSO leaves it pending for the next tick.

The aggregator side (:class:`ErasureDesk`), at each sample tick, for the notices pending for its
TSO: unlinks the erased devices from its own stores (its device book, every row of the device's
certificate venID in its VTN database, the devices-file rows through ``on_unlinked``) at once,
even while the TSO is away; then, once the TSO is reachable,
re-registers its pool (the devices are gone from the registration), then sends what its outbox
still holds (rows queued while the TSO was away may name the erased pseudonyms: they must reach
the TSO before the notice, never after it), then sends the notices, then scrubs its VTN
database and its outbox (:meth:`AggregatorNode.scrub_stores`).

Why no unexplained entry is left at the TSO (the elimination attack): a notice lists every
pseudonym the prosumer was ever issued, for every month since onboarding (computed before the
data key was destroyed, :func:`privacy.erase_prosumer`), and the TSO deletes them all. What the
TSO keeps afterwards is exactly what the remaining devices' pseudonyms explain: nobody, the
aggregator included, can single out the erased household as "the entry no device accounts for",
because there is no such entry. The TSO learns that *some* pseudonyms were erased (the notice
tells it), which it could see anyway from the re-registration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from privacy import ErasureNotice, PendingErasure, is_pseudonym
from schemas import (
    InvalidData,
    ReadingType,
    Report,
    ReportDescription,
    ReportInterval,
    ReportPayload,
)
from schemas.logtext import escaped
from ven import VenError
from vtn.app import STORAGE
from vtn.capture import purge_naming

if TYPE_CHECKING:
    from .aggregator import AggregatorNode
    from .tso import TsoNode

__all__ = [
    "ERASE_RID",
    "ERASURE_REPORT",
    "ERASURE_REPORT_TYPE",
    "ERASURE_SUFFIX",
    "Erased",
    "ErasureDesk",
    "ErasureIntake",
    "erasure_metadata",
    "erasure_report",
    "notice_pseudonyms",
]

log = logging.getLogger(__name__)

ERASURE_REPORT: Final = "x-ERASURE"
ERASURE_SUFFIX: Final = ":erasure"
ERASE_RID: Final = "x-erase"
ERASURE_REPORT_TYPE: Final = "x-erasure"
_DELIVERY: Final = {"requested_by": "aggregator", "reason": "deliver erasure notices"}


def erasure_metadata(pool_id: str, *, created: datetime) -> Report:
    """The x-ERASURE METADATA the aggregator registers beside its pool."""
    return Report(report_request_id="0", report_specifier_id=pool_id + ERASURE_SUFFIX,
                  created_date_time=created, report_name=ERASURE_REPORT, duration=timedelta(0),
                  descriptions=(ReportDescription(r_id=ERASE_RID, report_type=ERASURE_REPORT_TYPE,
                                                  reading_type=ReadingType.X_NOT_APPLICABLE),))


def erasure_report(notice: ErasureNotice, *, report_request_id: str, pool_id: str,
                   created: datetime) -> Report:
    """One notice as the x-ERASURE oadrUpdateReport's report: pseudonyms in xcal:uid, sorted
    (their order says nothing)."""
    intervals = tuple(ReportInterval(dtstart=created, duration=timedelta(0), uid=name,
                                     payloads=(ReportPayload(r_id=ERASE_RID, value=1.0),))
                      for name in sorted(notice.all_pseudonyms()))
    return Report(report_request_id=report_request_id,
                  report_specifier_id=pool_id + ERASURE_SUFFIX, created_date_time=created,
                  report_id=notice.notice_id, report_name=ERASURE_REPORT, intervals=intervals)


def notice_pseudonyms(report: Report) -> frozenset[str]:
    """The pseudonyms an x-ERASURE report names; InvalidData (454) if any uid is not one."""
    names = frozenset(str(i.uid or "") for i in report.intervals)
    if not names or not all(is_pseudonym(n) for n in names):
        raise InvalidData("an x-ERASURE report names pseudonyms, one per interval xcal:uid")
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class Erased:
    """One notice the TSO acted on (for its records and the tests): no pseudonym in it."""

    ven_id: str
    notice_id: str
    pseudonyms: int
    rows: int
    at: datetime


class ErasureIntake:
    """The TSO's side: delete every row of the listed pseudonyms, then let the reply confirm."""

    __slots__ = ("_erased", "_tso", "acted")

    def __init__(self, tso: TsoNode) -> None:
        self._tso = tso
        self.acted: list[Erased] = []
        # the names erased while serving the current request (set by capture_sweep): per
        # request, so a concurrent request's sweep cannot take them before the notice's own
        # capture is written
        self._erased: ContextVar[set[str] | None] = ContextVar(f"erased-{id(self)}",
                                                                default=None)

    async def take(self, ven_id: str, report: Report) -> None:
        names = notice_pseudonyms(report)
        storage = self._tso.app[STORAGE]
        rows = await storage.reports.erase_r_ids(ven_id, names)
        rows += self._tso.registry.forget(ven_id, names)
        if not await storage.scrub():
            log.warning("erasure notice %s: old copies of the deleted rows stay until the next "
                        "checkpoint (a reader held the WAL) or VACUUM (PostgreSQL)",
                        escaped(report.report_id))
        request_erased = self._erased.get()
        if request_erased is not None:
            request_erased.update(names)
        self.acted.append(Erased(ven_id=ven_id, notice_id=str(report.report_id or ""),
                                 pseudonyms=len(names), rows=rows, at=self._tso.now()))
        log.info("erasure notice %s from %s: %d pseudonym(s), %d row(s) deleted",
                 escaped(report.report_id), ven_id, len(names), rows)


    def capture_sweep(self, folder: Path) -> Middleware:
        """A middleware to place *outside* the capture middleware: once a request's captures
        are written (a notice's own capture names every pseudonym it erases), it deletes every
        capture naming a pseudonym erased during that request, before the reply leaves."""

        @web.middleware
        async def sweep(request: web.Request, handler: Handler) -> web.StreamResponse:
            erased: set[str] = set()
            token = self._erased.set(erased)
            try:
                response = await handler(request)
            finally:
                self._erased.reset(token)
            if erased:
                gone = await asyncio.to_thread(purge_naming, folder, erased)
                log.info("erasure: %d captured message(s) naming erased pseudonyms deleted", gone)
            return response

        return sweep


class ErasureDesk:
    """The aggregator's side: unlink locally, re-register, deliver, record the acknowledgement."""

    __slots__ = ("_node", "_unlinked", "on_unlinked")

    def __init__(self, node: AggregatorNode) -> None:
        self._node = node
        self._unlinked: set[str] = set()  # notice ids whose devices this node has unlinked
        #: called with the venIDs (certificate fingerprints) of unlinked devices, e.g. to
        #: remove their rows from the devices file
        self.on_unlinked: Callable[[tuple[str, ...]], object] | None = None

    async def deliver_pending(self) -> int:
        """Unlink the devices of every notice pending for the node's TSO from the node's own
        stores, whether or not the TSO is reachable; then, when it is, deliver the notices.
        Returns how many the TSO acknowledged. While the TSO is away, a notice already unlinked
        is not read again (reading pending notices is audited: no entry per tick)."""
        node = self._node
        waiting = {r.notice_id for r in node.vault.erasure.notices()
                   if r.recipient == node.settings.tso_recipient and r.acknowledged_at is None}
        if not waiting:
            return 0
        reachable = node.upstream is not None and not node.link.down(node.clock())
        if not reachable and waiting <= self._unlinked:
            return 0
        pending = node.vault.erasure.pending(node.settings.tso_recipient, **_DELIVERY)
        if await self._unlink(pending):
            await node.scrub_stores()
        self._unlinked.update(item.notice.notice_id for item in pending)
        if not reachable or node.upstream is None:
            return 0
        acknowledged = 0
        try:
            await node.register_pool()
            if node.settings.pool_id + ERASURE_SUFFIX not in node.requests:
                log.warning("the TSO did not subscribe to %s: erasure notices stay pending",
                            ERASURE_REPORT)
                return 0
            await node.upstream.flush_reports()  # queued rows first: the notice erases them too
            for item in pending:
                await self._send(item.notice)
                node.vault.erasure.acknowledge(item.notice.notice_id, node.clock())
                acknowledged += 1
        except VenError as exc:
            log.warning("erasure notice not delivered yet (stays pending): %s", escaped(exc))
        if acknowledged:
            await node.scrub_stores()
        return acknowledged

    async def _unlink(self, pending: tuple[PendingErasure, ...]) -> int:
        """Forget the notices' devices in the node's stores; how many were still known."""
        node = self._node
        ven_ids = []
        for device in {d for item in pending for d in item.devices}:
            entry = node.book.forget(device)
            if entry is not None:
                ven_ids.append(entry.ven_id)
                await node.ctx.storage.vens.erase(entry.ven_id)
        if ven_ids and self.on_unlinked is not None:
            self.on_unlinked(tuple(ven_ids))
        return len(ven_ids)

    async def _send(self, notice: ErasureNotice) -> None:
        node = self._node
        assert node.upstream is not None
        pool_id = node.settings.pool_id
        report = erasure_report(notice, report_request_id=node.requests[pool_id + ERASURE_SUFFIX],
                                pool_id=pool_id, created=node.clock())
        await node.upstream.deliver_report(report)
