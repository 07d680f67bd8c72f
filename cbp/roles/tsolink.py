"""The aggregator's watch over its TSO link: contact, outage, late telemetry, release.

The exceptions of docs/architecture.md#reference-scenarios: "the TSO link drops for 36 s: the
aggregator holds the last setpoint, buffers telemetry and sends it later with its original
timestamps marked late; after 60 s
without contact it ramps to 0". Both lengths are configuration (``CbpTiming.link_timeout``,
``CbpTiming.link_release``).

- Contact: every reply the aggregator decodes from the TSO (poll, ack, report, registration)
  is contact, stamped with the aggregator's clock (:meth:`LinkWatch.contact`, called by the
  upstream codec). Silence is the time since the last contact.
- Retry: the aggregator's client retries the TSO at least every ``link_timeout`` (its back-off
  is capped there), so a TSO that is back is heard within that, long before ``link_release``.
- Down: silence over ``link_timeout`` after an exchange with the TSO failed (unreachable,
  timed out, 5xx: :meth:`LinkWatch.failure`). A link that is merely slow, its reply still on the
  way, is not down: holding rows then would only delay them. While down, the aggregator keeps
  its closed pool rows in its own buffer instead of queueing them (:class:`PoolRowBuffer`); the
  setpoints already dispatched stay as they are: that is "holding the last setpoint".
- Late on the wire: rows buffered over an outage are sent once contact is back, in time order,
  each at its original sample instant (xcal:dtstart) with ``oadrDataQuality`` = ``x-late``
  (:data:`cbp.roles.profile.LATE_QUALITY`; oadrDataQualityType admits x- extension tokens, so
  the message stays 2.0b-valid). The value is as measured; only its delivery was late. Rows
  queued before the aggregator noticed the silence travel unmarked through the durable outbox,
  as do baselines and per-device metering (each with its own instants): the TSO settles on all
  of them whenever they arrive, so the mark is information, never a reason to drop a value.
- Release: silence of ``link_release`` releases every running activation once per outage
  (:meth:`LinkWatch.release_due`): device events are cancelled, the pool returns to its natural
  consumption, i.e. the regulation ramps to 0.

Invariants: a row leaves the buffer once, when it is sent, so nothing is lost or sent twice;
rows go out in the order they were closed; nothing here reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cbp.pool import PoolRow
from schemas import ReportInterval, ReportPayload

from .profile import LATE_QUALITY

__all__ = ["LinkWatch", "PoolRowBuffer"]


@dataclass(slots=True, kw_only=True)
class LinkWatch:
    """When the TSO last answered, and what that means now."""

    clock: Callable[[], datetime]
    timeout: timedelta
    release_after: timedelta
    last_contact: datetime | None = None
    last_failure: datetime | None = None
    #: the last_contact an outage release was done for (one release per outage)
    _released_for: datetime | None = None

    def contact(self) -> None:
        self.last_contact = self.clock()

    def failure(self) -> None:
        """An exchange with the TSO failed (it could not be reached or did not answer)."""
        self.last_failure = self.clock()

    def silence(self, now: datetime) -> timedelta:
        return timedelta(0) if self.last_contact is None else now - self.last_contact

    def down(self, now: datetime) -> bool:
        failed_since_contact = self.last_failure is not None and (
            self.last_contact is None or self.last_failure >= self.last_contact)
        return failed_since_contact and self.silence(now) > self.timeout

    def release_due(self, now: datetime) -> bool:
        """True once per outage, when the silence reaches ``release_after``."""
        if self.last_contact is None or self.silence(now) < self.release_after:
            return False
        if self._released_for == self.last_contact:
            return False
        self._released_for = self.last_contact
        return True


@dataclass(slots=True)
class PoolRowBuffer:
    """Closed pool rows not sent yet; those held over an outage are marked late."""

    rows: list[PoolRow] = field(default_factory=list)
    late: set[datetime] = field(default_factory=set)

    def add(self, row: PoolRow) -> None:
        self.rows.append(row)

    def hold(self) -> None:
        """The link is down: everything buffered now goes out late."""
        self.late.update(r.at for r in self.rows)

    def take(self, pool_id: str, period: timedelta) -> tuple[ReportInterval, ...]:
        """Empty the buffer into report intervals (MW), late rows marked."""
        rows, late = self.rows, self.late
        self.rows, self.late = [], set()
        return tuple(
            ReportInterval(dtstart=r.at, duration=period, payloads=(ReportPayload(
                r_id=pool_id, value=float(r.mw),
                data_quality=LATE_QUALITY if r.at in late else None),))
            for r in rows)
