"""Opt schedules (spec 8.5, EiOpt): a VEN's oadrCreateOpt and oadrCancelOpt.

Invariants: a schedule is keyed by (ven_id, optID); storing the same optID again replaces the
schedule and its windows in one transaction (an idempotent re-send or an update). Cancelling keeps
the row with ``cancelled_at`` set, so what was in force at any past time can still be answered.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ._engine import Database
from ._models import OptScheduleRow, OptWindowRow
from .records import OptSchedule, OptType, OptWindow

__all__ = ["OptRepository"]


def _schedule(row: OptScheduleRow, windows: Iterable[OptWindowRow]) -> OptSchedule:
    return OptSchedule(
        ven_id=row.ven_id,
        opt_id=row.opt_id,
        opt_type=OptType(row.opt_type),
        opt_reason=row.opt_reason,
        market_context=row.market_context,
        resource_id=row.resource_id,
        event_id=row.event_id,
        windows=tuple(OptWindow(starts_at=w.starts_at, duration=w.duration) for w in windows),
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
    )


async def _load(session: AsyncSession, rows: list[OptScheduleRow]) -> tuple[OptSchedule, ...]:
    if not rows:
        return ()
    keys = {(r.ven_id, r.opt_id) for r in rows}
    stmt = (
        select(OptWindowRow)
        .where(OptWindowRow.ven_id.in_({v for v, _ in keys}))
        .order_by(OptWindowRow.starts_at)
    )
    windows: dict[tuple[str, str], list[OptWindowRow]] = {}
    for w in await session.scalars(stmt):
        if (w.ven_id, w.opt_id) in keys:
            windows.setdefault((w.ven_id, w.opt_id), []).append(w)
    return tuple(_schedule(r, windows.get((r.ven_id, r.opt_id), ())) for r in rows)


class OptRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, schedule: OptSchedule) -> None:
        """Store or replace the VEN's schedule with this optID, windows included."""
        values = {
            "ven_id": schedule.ven_id,
            "opt_id": schedule.opt_id,
            "opt_type": schedule.opt_type.value,
            "opt_reason": schedule.opt_reason,
            "market_context": schedule.market_context,
            "resource_id": schedule.resource_id,
            "event_id": schedule.event_id,
            "created_at": schedule.created_at,
            "cancelled_at": schedule.cancelled_at,
        }
        stmt = self._db.insert(OptScheduleRow).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["ven_id", "opt_id"],
            set_={k: getattr(stmt.excluded, k) for k in values if k not in ("ven_id", "opt_id")},
        )
        windows = [
            {
                "ven_id": schedule.ven_id,
                "opt_id": schedule.opt_id,
                "starts_at": w.starts_at,
                "duration": w.duration,
            }
            for w in {w.starts_at: w for w in schedule.windows}.values()
        ]
        async with self._db.write() as session:
            await session.execute(stmt)
            await session.execute(
                delete(OptWindowRow).where(
                    OptWindowRow.ven_id == schedule.ven_id, OptWindowRow.opt_id == schedule.opt_id
                )
            )
            if windows:
                await session.execute(self._db.insert(OptWindowRow).values(windows))

    async def cancel(self, ven_id: str, opt_id: str, *, at: datetime) -> bool:
        """oadrCancelOpt; False if the VEN has no such (uncancelled) schedule."""
        stmt = (
            update(OptScheduleRow)
            .where(
                OptScheduleRow.ven_id == ven_id,
                OptScheduleRow.opt_id == opt_id,
                OptScheduleRow.cancelled_at.is_(None),
            )
            .values(cancelled_at=at)
        )
        async with self._db.write() as session:
            return (await session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def get(self, ven_id: str, opt_id: str) -> OptSchedule | None:
        async with self._db.read() as session:
            row = await session.get(OptScheduleRow, (ven_id, opt_id))
            return None if row is None else (await _load(session, [row]))[0]

    async def for_ven(
        self, ven_id: str, *, include_cancelled: bool = False
    ) -> tuple[OptSchedule, ...]:
        stmt = (
            select(OptScheduleRow)
            .where(OptScheduleRow.ven_id == ven_id)
            .order_by(OptScheduleRow.created_at, OptScheduleRow.opt_id)
        )
        if not include_cancelled:
            stmt = stmt.where(OptScheduleRow.cancelled_at.is_(None))
        async with self._db.read() as session:
            return await _load(session, list(await session.scalars(stmt)))

    async def in_force(
        self, ven_id: str, at: datetime, *, resource_id: str | None = None
    ) -> tuple[OptSchedule, ...]:
        """Uncancelled schedules with a window covering ``at`` (start inclusive, end exclusive),
        for the whole VEN or, when given, that resource."""
        schedules = await self.for_ven(ven_id)
        return tuple(
            s
            for s in schedules
            if (resource_id is None or s.resource_id in (None, resource_id))
            and any(w.starts_at <= at < w.ends_at for w in s.windows)
        )
