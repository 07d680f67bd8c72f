"""The VEN's reports (EiReport, OpenADR 2.0b profile 8.3): what it offers, what was asked, sending.

Owns: the METADATA reports this VEN registered (by reportSpecifierID), the report requests it
accepted (by reportRequestID, from oadrRegisteredReport or oadrCreateReport), one owned task per
accepted request that samples the application's provider on schedule, and the flusher that drains
the durable outbox towards the VTN.

Invariants: every oadrUpdateReport goes through the outbox (committed before ``send`` returns) and
leaves it only after the VTN answered; items leave in order, one at a time, so the VTN sees them in
the order they were made. A transport failure keeps the item and backs off; a VTN refusal (an
OpenADR error code) is final for that item: it is logged, handed to ``on_error`` and dropped, so
one poisoned report cannot block every later one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import (
    CreatedReport,
    EiResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Report,
    ReportDescription,
    ReportInterval,
    ReportName,
    ReportRequest,
    Service,
    UpdateReport,
)
from schemas.logtext import escaped

from ._http import Link, check_reply
from .backoff import Backoff
from .errors import ErrorHandler, VenError, VtnRefused, VtnUnavailable
from .outbox import Outbox

__all__ = ["AcceptedReport", "ReportDesk", "ReportProvider", "metadata_report"]

log = logging.getLogger(__name__)

ReportProvider = Callable[
    [ReportRequest, datetime, datetime],
    Sequence[ReportInterval] | Awaitable[Sequence[ReportInterval]],
]
"""Called with (request, since, until) when a scheduled report is due; returns its intervals."""

_METADATA_PREFIX = "METADATA_"


def metadata_report(
    descriptions: Sequence[ReportDescription],
    *,
    created: datetime,
    report_specifier_id: str,
    report_name: ReportName | str = ReportName.METADATA_TELEMETRY_USAGE,
    duration: timedelta = timedelta(0),
) -> Report:
    """A METADATA report offering ``descriptions``; its reportRequestID is "0" (none asked yet)."""
    return Report(
        report_request_id="0",
        report_specifier_id=report_specifier_id,
        created_date_time=created,
        report_name=report_name,
        duration=duration,
        descriptions=tuple(descriptions),
    )


def data_name(metadata_name: ReportName | str | None) -> ReportName | str | None:
    """The data report's name for a METADATA report's name (METADATA_X -> X)."""
    if metadata_name is None or not str(metadata_name).startswith(_METADATA_PREFIX):
        return metadata_name
    plain = str(metadata_name).removeprefix(_METADATA_PREFIX)
    return ReportName(plain) if plain in ReportName._value2member_map_ else plain


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptedReport:
    """A report request the VEN agreed to serve, with the METADATA report it refers to."""

    request: ReportRequest
    metadata: Report | None

    @property
    def period(self) -> timedelta:
        """How often data is sent back: reportBackDuration, else granularity (0: once)."""
        spec = self.request.report_specifier
        return spec.report_back_duration or spec.granularity


class ReportDesk:
    """Report state and delivery for one VTN. Built and closed by :class:`ven.VenClient`."""

    def __init__(
        self,
        *,
        link: Link,
        outbox: Outbox,
        outbox_key: str,
        backoff: Backoff,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        ven_id: Callable[[], str],
        provider: ReportProvider | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_error: ErrorHandler | None = None,
        retry_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._link = link
        self._outbox = outbox
        self._key = outbox_key
        self._backoff = backoff
        self._clock = clock
        self._new_id = new_id
        self._ven_id = ven_id
        self._provider = provider
        self._sleep = sleep
        self._on_error = on_error
        self._retry_sleep = retry_sleep
        self.offered: dict[str, Report] = {}
        self.accepted: dict[str, AcceptedReport] = {}
        self._schedules: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one sender at a time, or an item could leave twice
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ requests

    def offer(self, reports: Sequence[Report]) -> None:
        for report in reports:
            self.offered[report.report_specifier_id] = report

    def accept(self, requests: Sequence[ReportRequest]) -> tuple[str, ...]:
        """Take the requests that name a report we offered; their reportRequestIDs."""
        taken = []
        for request in requests:
            specifier = request.report_specifier.report_specifier_id
            metadata = self.offered.get(specifier)
            if metadata is None:
                log.warning("VTN asked for report %s, which this VEN never offered",
                            escaped(repr(specifier)))
                continue
            accepted = AcceptedReport(request=request, metadata=metadata)
            self.cancel((request.report_request_id,))
            self.accepted[request.report_request_id] = accepted
            taken.append(request.report_request_id)
            if self._provider is not None and accepted.period > timedelta(0):
                task = asyncio.get_running_loop().create_task(self._schedule(accepted))
                self._schedules[request.report_request_id] = task
        return tuple(taken)

    def cancel(self, report_request_ids: Sequence[str]) -> tuple[str, ...]:
        """Stop the given requests; the reportRequestIDs still pending afterwards."""
        for request_id in report_request_ids:
            self.accepted.pop(request_id, None)
            task = self._schedules.pop(request_id, None)
            if task is not None:
                task.cancel()
        return tuple(self.accepted)

    def created_report(self, request_id: str) -> CreatedReport:
        """oadrCreatedReport answering ``request_id``: every request accepted so far pending."""
        return CreatedReport(response=EiResponse(request_id=request_id),
                             pending_reports=tuple(self.accepted), ven_id=self._ven_id())

    async def _schedule(self, accepted: AcceptedReport) -> None:
        assert self._provider is not None
        request = accepted.request
        # whole seconds: an xcal duration has no fraction, so until - since must not either
        since = self._clock().replace(microsecond=0)
        while True:
            await self._sleep(accepted.period.total_seconds())
            until = self._clock().replace(microsecond=0)
            try:
                produced = self._provider(request, since, until)
                intervals = await produced if inspect.isawaitable(produced) else produced
                if intervals:
                    await self.send(request.report_request_id, intervals, dtstart=since,
                                    duration=until - since)
            except Exception:  # a bad report must not end the schedule without a word
                log.exception("report %s: the provider failed or its data could not be queued",
                              escaped(request.report_request_id))
                continue
            since = until

    # ------------------------------------------------------------ data

    async def send(
        self,
        report_request_id: str,
        intervals: Sequence[ReportInterval],
        *,
        dtstart: datetime | None = None,
        duration: timedelta | None = None,
        report_specifier_id: str | None = None,
        report_name: ReportName | str | None = None,
    ) -> int:
        """Queue one oadrUpdateReport durably; its outbox sequence number."""
        accepted = self.accepted.get(report_request_id)
        if accepted is None and report_specifier_id is None:
            raise LocalProtocolError(f"no accepted report request {report_request_id!r}")
        metadata = accepted.metadata if accepted is not None else None
        specifier = report_specifier_id or (
            accepted.request.report_specifier.report_specifier_id if accepted else ""
        )
        name = report_name or data_name(metadata.report_name if metadata else None)
        report = Report(
            report_request_id=report_request_id,
            report_specifier_id=specifier,
            created_date_time=self._clock(),
            report_id=self._new_id(),
            report_name=name,
            dtstart=dtstart,
            duration=duration,
            intervals=tuple(intervals),
        )
        message = UpdateReport(request_id=self._new_id(), reports=(report,), ven_id=self._ven_id())
        seq = await self._outbox.put(self._key, Service.REPORT, self._link.codec.encode(message))
        self._wake.set()
        return seq

    async def flush(self) -> int:
        """Send every queued item for this VTN, oldest first; how many left the outbox.

        Raises :class:`VtnUnavailable` (item kept) when the VTN cannot be reached.
        """
        async with self._flushing:
            return await self._flush_locked()

    async def _flush_locked(self) -> int:
        sent = 0
        while items := await self._outbox.pending(self._key, 50):
            for item in items:
                try:
                    reply = await self._link.post(Service(item.service), item.payload)
                    check_reply(reply, "oadrUpdateReport")
                except VtnRefused as refusal:
                    log.error("VTN refused queued item %d for good: %s", item.seq, escaped(refusal))
                    self._report(refusal)
                except RemoteProtocolError as exc:
                    # We cannot tell whether the VTN took it: keep it and retry later.
                    raise VtnUnavailable(f"unreadable answer to queued item: {exc}") from exc
                await self._outbox.done(item.seq)
                sent += 1
        return sent

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())
            self._wake.set()  # items left over from an earlier run go first

    async def _flush_forever(self) -> None:
        attempt = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                attempt = 0
            except VtnUnavailable as exc:
                # at least the VTN's Retry-After (HTTP 429/503), bounded by the back-off cap
                delay = self._backoff.delay_after(attempt, exc.retry_after)
                attempt += 1
                log.warning("outbox: VTN unavailable (%s); retry %d in %.3f s", escaped(exc),
                            attempt, delay)
                self._report(exc)
                self._wake.set()
                await self._retry_sleep(delay)

    def _report(self, error: VenError) -> None:
        if self._on_error is not None:
            self._on_error(error)

    async def close(self) -> None:
        tasks = [*self._schedules.values(), *([self._flusher] if self._flusher else [])]
        self._schedules.clear()
        self._flusher = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
