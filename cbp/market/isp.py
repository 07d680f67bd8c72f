"""The ISP calendar: imbalance settlement periods of one market day
(docs/architecture.md#market-rules).

A market day is a local calendar day in the rules' timezone (Europe/Amsterdam by default); its ISPs
are numbered 1..N from local midnight, N = day length / ISP length: 96 on a normal day, 92 on the
spring DST day (23 h) and 100 on the autumn one (25 h). Numbering follows elapsed time, so on
2025-10-26 ISP 9 and ISP 13 both start at a local 02:00, an hour apart in UTC. A compressed-time
run may shift the whole grid by ``MarketRules.isp_phase`` (the day then begins that long after
midnight).

Invariants: every instant maps to exactly one ``IspRef``; ``isp_start``/``isp_end`` return aware
UTC datetimes; an index outside 1..N raises ``NoSuchIsp`` (never wraps into the next day).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cbp.errors import CbpError

from .config import MarketRules

__all__ = ["IspCalendar", "IspRef", "NoSuchIsp"]


class NoSuchIsp(CbpError, ValueError):
    """The ISP index does not exist on that market day (e.g. ISP 97 on a 96-ISP day)."""


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class IspRef:
    """One ISP: the local market day and its 1-based index on that day."""

    day: date
    index: int

    def __str__(self) -> str:
        return f"{self.day.isoformat()}#{self.index}"


class IspCalendar:
    """Maps between ISP references and UTC instants for one set of market rules."""

    __slots__ = ("_isp", "_phase", "_zone")

    def __init__(self, rules: MarketRules | None = None) -> None:
        rules = rules if rules is not None else MarketRules()
        self._zone = ZoneInfo(rules.timezone)
        self._isp = rules.isp_length
        self._phase = rules.isp_phase

    @property
    def isp_length(self) -> timedelta:
        return self._isp

    def day_start(self, day: date) -> datetime:
        """Where market day ``day`` begins (local midnight, plus the phase) in aware UTC."""
        return datetime.combine(day, time(0), tzinfo=self._zone).astimezone(UTC) + self._phase

    def isp_count(self, day: date) -> int:
        length = self.day_start(day + timedelta(days=1)) - self.day_start(day)
        return length // self._isp

    def isp_start(self, isp: IspRef) -> datetime:
        count = self.isp_count(isp.day)
        if not 1 <= isp.index <= count:
            raise NoSuchIsp(f"no ISP {isp.index} on {isp.day.isoformat()} (1..{count})")
        return self.day_start(isp.day) + (isp.index - 1) * self._isp

    def isp_end(self, isp: IspRef) -> datetime:
        return self.isp_start(isp) + self._isp

    def isp_at(self, instant: datetime) -> IspRef:
        """The ISP containing ``instant`` (start inclusive, end exclusive); aware datetimes only."""
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError("isp_at needs a timezone-aware datetime")
        day = (instant.astimezone(UTC) - self._phase).astimezone(self._zone).date()
        elapsed = instant.astimezone(UTC) - self.day_start(day)
        return IspRef(day=day, index=elapsed // self._isp + 1)

    def isps(self, day: date) -> Iterator[IspRef]:
        for index in range(1, self.isp_count(day) + 1):
            yield IspRef(day=day, index=index)
