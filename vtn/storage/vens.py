"""VEN registrations and memberships (OpenADR 2.0b spec 8.4, EiRegisterParty).

Invariants: a certificate fingerprint belongs to at most one VEN, and a VEN keeps its ven_id when it
registers again with the same certificate (the row is updated in place: registration_id and
created_at kept, cancelled_at cleared; tests/vtn/test_services_flow.py). Memberships (group,
resource, party IDs) are what event targets are matched against; only active (not cancelled)
VENs are ever targeted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar, cast

from sqlalchemy import ColumnElement, Connection, Table, delete, select, update

from ._engine import Database, chunks, from_sqlite_time, sqlite_time
from ._models import Base, VenMembershipRow, VenRow
from .backend import EVENT_KIND, Backend, Enrolment, TargetQuery
from .notify import notify_registrations
from .pollindex import PollIndex
from .records import StorageConflict, TargetKind, TargetRef, VenRegistration

__all__ = ["VenRepository", "memberships_in"]

T = TypeVar("T")

_REFRESHED = (
    "registration_id",
    "ven_name",
    "profile_name",
    "transport_name",
    "transport_address",
    "http_pull_model",
    "report_only",
    "xml_signature",
    "cancelled_at",
)


def _record(row: Any) -> VenRegistration:
    return VenRegistration(
        ven_id=row.ven_id,
        registration_id=row.registration_id,
        fingerprint=row.fingerprint,
        ven_name=row.ven_name,
        profile_name=row.profile_name,
        transport_name=row.transport_name,
        transport_address=row.transport_address,
        http_pull_model=row.http_pull_model,
        report_only=row.report_only,
        xml_signature=row.xml_signature,
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
    )


_VEN_COLUMNS: Final = (
    "ven_id, registration_id, fingerprint, ven_name, profile_name, transport_name,"
    " transport_address, http_pull_model, report_only, xml_signature, created_at, cancelled_at"
)
_POLL_LOOKUP_SQLITE: Final = (
    f"SELECT {_VEN_COLUMNS}, EXISTS (SELECT 1 FROM outbox WHERE outbox.ven_id = vens.ven_id"
    " AND outbox.delivered_at IS NULL)"
    " FROM vens WHERE fingerprint = ?"
)
# The registration hot path (Enrolment) as plain sqlite3 SQL, one write transaction.
_REGISTER_SQLITE: Final = (
    f"INSERT INTO vens ({_VEN_COLUMNS}) VALUES ({', '.join('?' * 12)})"
    " ON CONFLICT (fingerprint) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _REFRESHED)
    + f" RETURNING {_VEN_COLUMNS}"
)
_QUEUE_ONE_SQLITE: Final = (
    "INSERT INTO outbox (ven_id, kind, payload, dedup_key, enqueued_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (ven_id, dedup_key) DO NOTHING"
)
_TARGETING_VEN_SQLITE: Final = (  # statuses: one "?" each, filled in per call
    "SELECT DISTINCT e.event_id FROM events e JOIN event_targets t ON t.event_id = e.event_id"
    " WHERE e.status IN ({}) AND (e.ends_at IS NULL OR e.ends_at > ?)"
    " AND ((t.kind = ? AND t.value = ?) OR (t.kind, t.value) IN"
    " (SELECT kind, value FROM ven_memberships WHERE ven_id = ?)) ORDER BY e.event_id"
)


def _registration_sqlite(row: Sequence[Any]) -> VenRegistration:
    created_at = from_sqlite_time(row[10])
    assert created_at is not None
    return VenRegistration(
        ven_id=row[0], registration_id=row[1], fingerprint=row[2], ven_name=row[3],
        profile_name=row[4], transport_name=row[5], transport_address=row[6],
        http_pull_model=bool(row[7]), report_only=bool(row[8]), xml_signature=bool(row[9]),
        created_at=created_at, cancelled_at=from_sqlite_time(row[11]),
    )


def _poll_lookup_sqlite(
    conn: sqlite3.Connection, fingerprint: str
) -> tuple[VenRegistration | None, bool]:
    row = conn.execute(_POLL_LOOKUP_SQLITE, (fingerprint,)).fetchone()
    if row is None:
        return None, False
    return _registration_sqlite(row), bool(row[12])


def _register_sqlite(conn: sqlite3.Connection,
                     enrolment: Enrolment) -> tuple[VenRegistration, tuple[str, ...]]:
    """:meth:`Backend.register` on SQLite, inside the caller's write transaction."""
    reg, at = enrolment.registration, sqlite_time(enrolment.now)
    row = conn.execute(_REGISTER_SQLITE, (
        reg.ven_id, reg.registration_id, reg.fingerprint, reg.ven_name, reg.profile_name,
        reg.transport_name, reg.transport_address, reg.http_pull_model, reg.report_only,
        reg.xml_signature, sqlite_time(reg.created_at),
        None if reg.cancelled_at is None else sqlite_time(reg.cancelled_at))).fetchone()
    stored = _registration_sqlite(row)
    for kind, payload, dedup_key in enrolment.queued:
        conn.execute(_QUEUE_ONE_SQLITE, (stored.ven_id, kind, payload, dedup_key, at))
    if not enrolment.live:
        return stored, ()
    sql = _TARGETING_VEN_SQLITE.format(",".join("?" * len(enrolment.live)))
    affected = tuple(r[0] for r in conn.execute(sql, (
        *(s.value for s in enrolment.live), at, TargetKind.VEN.value, stored.ven_id,
        stored.ven_id)))
    if affected:  # like a publish: the queued item only says "your list changed"
        conn.execute(_QUEUE_ONE_SQLITE, (stored.ven_id, EVENT_KIND, b"", None, at))
    return stored, affected


_VENS = cast(Table, VenRow.__table__)
_MEMBERS = cast(Table, VenMembershipRow.__table__)


def _one(conn: Connection, condition: ColumnElement[bool]) -> VenRegistration | None:
    row = conn.execute(select(_VENS).where(condition)).one_or_none()
    return None if row is None else _record(row)


class VenRepository:
    def __init__(self, db: Database, backend: Backend, index: PollIndex) -> None:
        self._db = db
        self._backend = backend
        self._index = index

    async def _write(self, work: Callable[[Connection], tuple[str | None, T]]) -> T:
        """Run a registration write, ``work`` returning the fingerprint whose registration it
        changed (None: none) and its result; then the poll index forgets that registration
        (every one if the write failed: it may have committed before the failure surfaced)."""
        try:
            fingerprint, result = await self._db.run_write(work)
        except BaseException:
            self._index.registration_changed(None)
            raise
        if fingerprint is not None:
            self._index.registration_changed(fingerprint)
        return result

    def _notify(self, conn: Connection, fingerprint: str) -> None:
        """Inside a write of the registration of ``fingerprint`` on PostgreSQL: the other
        workers forget theirs of it."""
        if self._db.postgres:
            notify_registrations(conn, fingerprint)

    async def register(self, registration: VenRegistration) -> VenRegistration:
        """Store a registration; a fingerprint seen before updates that VEN's row instead.

        Returns the stored registration, whose ven_id is the existing one for a known fingerprint.
        Raises :class:`StorageConflict` if the ven_id or registration_id belongs to another
        fingerprint. The write of :meth:`enrol`, with nothing queued and no events looked up.
        """
        return await self.enrol(Enrolment(registration=registration,
                                          now=registration.created_at))

    async def enrol(self, enrolment: Enrolment) -> VenRegistration:
        """An oadrCreatePartyRegistration's writes and read in one transaction
        (:class:`~vtn.storage.backend.Enrolment`): the stored registration (see :meth:`register`).
        """
        ven_ids = (enrolment.registration.ven_id,)
        try:
            try:
                stored, _ = await self._backend.register(enrolment)
            except StorageConflict:
                # Two registrations of one new certificate at once (two workers): PostgreSQL's
                # ON CONFLICT guards the fingerprint, and the loser may trip over the venID key
                # instead. Again, it finds the winner's row and updates it; a venID that is
                # really another fingerprint's conflicts again and is raised.
                stored, _ = await self._backend.register(enrolment)
            return stored
        finally:  # also after a failure: the write may have committed before it surfaced
            self._index.registration_changed(enrolment.registration.fingerprint)
            if enrolment.queued or enrolment.live:
                self._index.enqueued(ven_ids)

    async def get(self, ven_id: str) -> VenRegistration | None:
        return await self._db.run_read(lambda conn: _one(conn, _VENS.c.ven_id == ven_id))

    async def get_many(self, ven_ids: Iterable[str]) -> tuple[VenRegistration, ...]:
        """The registrations of those of ``ven_ids`` that exist, in venID order (one read)."""
        wanted = sorted(set(ven_ids))

        def work(conn: Connection) -> tuple[VenRegistration, ...]:
            return tuple(_record(row) for part in chunks(wanted, 1) for row in conn.execute(
                select(_VENS).where(_VENS.c.ven_id.in_(part)).order_by(_VENS.c.ven_id)))

        return await self._db.run_read(work) if wanted else ()

    async def by_fingerprint(self, fingerprint: str) -> VenRegistration | None:
        """The certificate's registration (from the poll index once it is known)."""
        known = self._index.registration(fingerprint)
        if known is not None:
            return known
        return (await self.poll_lookup(fingerprint))[0]  # the backend's plain SQL, one read

    async def by_registration_id(self, registration_id: str) -> VenRegistration | None:
        return await self._db.run_read(
            lambda conn: _one(conn, _VENS.c.registration_id == registration_id))

    async def poll_lookup(self, fingerprint: str) -> tuple[VenRegistration | None, bool]:
        """The certificate's registration and whether anything waits in its outbox, read in one
        statement: what an oadrPoll needs before it can answer "nothing for you". A VEN the poll
        index knows to be quiet, or to have an item queued since its last delivery, is answered
        from it without a read (on PostgreSQL while the index is live: vtn.storage.notify)."""
        quiet = self._index.quiet_registration(fingerprint)
        if quiet is not None:
            return quiet, False
        expecting = self._index.waiting_registration(fingerprint)
        if expecting is not None:
            return expecting, True
        ticket = self._index.ticket()
        found, has_items = await self._backend.poll_lookup(fingerprint)
        self._index.learn(ticket, fingerprint, found, has_items)
        return found, has_items

    async def cancel(self, registration_id: str, at: datetime) -> VenRegistration | None:
        """oadrCancelPartyRegistration: mark cancelled (kept for audit). None if unknown."""
        stmt = (
            update(_VENS)
            .where(_VENS.c.registration_id == registration_id)
            .values(cancelled_at=at)
            .returning(*_VENS.c)
        )

        def work(conn: Connection) -> tuple[str | None, VenRegistration | None]:
            row = conn.execute(stmt).one_or_none()
            if row is None:
                return None, None
            cancelled = _record(row)
            self._notify(conn, cancelled.fingerprint)
            return cancelled.fingerprint, cancelled

        return await self._write(work)

    async def erase(self, ven_id: str) -> int:
        """Delete the VEN and every row of it in every table (GDPR art. 17 erasure, not the
        cancel kept for audit); children first, one transaction. Returns how many rows went."""
        tables = [t for t in reversed(Base.metadata.sorted_tables) if "ven_id" in t.c]

        def work(conn: Connection) -> tuple[str | None, int]:
            fingerprint = conn.execute(select(_VENS.c.fingerprint).where(
                _VENS.c.ven_id == ven_id)).scalar_one_or_none()
            if fingerprint is not None:
                self._notify(conn, fingerprint)
            return fingerprint, sum(conn.execute(delete(t).where(t.c.ven_id == ven_id)).rowcount
                                    for t in tables)

        return await self._write(work)

    async def active(self) -> tuple[VenRegistration, ...]:
        stmt = select(_VENS).where(_VENS.c.cancelled_at.is_(None)).order_by(_VENS.c.ven_id)
        return await self._db.run_read(
            lambda conn: tuple(_record(row) for row in conn.execute(stmt)))

    async def set_memberships(self, ven_id: str, members: Iterable[TargetRef]) -> None:
        """Replace the VEN's group/resource/party memberships."""
        rows = [{"ven_id": ven_id, "kind": m.kind.value, "value": m.value} for m in set(members)]

        def work(conn: Connection) -> None:
            conn.execute(delete(_MEMBERS).where(_MEMBERS.c.ven_id == ven_id))
            if rows:
                conn.execute(self._db.insert(VenMembershipRow).values(rows))

        await self._db.run_write(work)

    async def memberships(self, ven_id: str) -> tuple[TargetRef, ...]:
        return await self._db.run_read(lambda conn: memberships_in(conn, ven_id))

    async def resolve_targets(self, targets: Iterable[TargetRef]) -> tuple[str, ...]:
        """The active VENs an ei:eiTarget addresses: named by venID or by a membership.

        Members of one target are alternatives (any match selects the VEN), as in openleadr and
        the 2.0b profile's use of eiTarget for distribution.
        """
        (resolved,) = await self.resolve_targets_many((tuple(targets),))
        return resolved

    async def resolve_targets_many(self, targets: Sequence[Iterable[TargetRef]]
                                   ) -> tuple[tuple[str, ...], ...]:
        """:meth:`resolve_targets` for each of many eiTargets, in one read (an aggregator
        publishes one event per device)."""
        return await self._backend.resolve_targets([_split(refs) for refs in targets])


def _split(targets: Iterable[TargetRef]) -> TargetQuery:
    """An eiTarget as (venIDs named, (kind, value) memberships)."""
    refs = set(targets)
    return ([r.value for r in refs if r.kind is TargetKind.VEN],
            [(r.kind.value, r.value) for r in refs if r.kind is not TargetKind.VEN])


def _resolve_targets_sqlite(conn: sqlite3.Connection, direct: list[str],
                            indirect: list[tuple[str, str]]) -> tuple[str, ...]:
    if not direct and not indirect:
        return ()
    conditions, params = [], []
    if direct:
        conditions.append(f"ven_id IN ({','.join('?' * len(direct))})")
        params.extend(direct)
    if indirect:
        pairs = ",".join("(?, ?)" for _ in indirect)
        conditions.append(f"ven_id IN (SELECT ven_id FROM ven_memberships"
                          f" WHERE (kind, value) IN (VALUES {pairs}))")
        params.extend(v for pair in indirect for v in pair)
    sql = (f"SELECT ven_id FROM vens WHERE cancelled_at IS NULL AND ({' OR '.join(conditions)})"
           " ORDER BY ven_id")
    return tuple(row[0] for row in conn.execute(sql, params))


def memberships_in(conn: Connection, ven_id: str) -> tuple[TargetRef, ...]:
    """The VEN's memberships, read inside the caller's transaction."""
    stmt = (
        select(_MEMBERS.c.kind, _MEMBERS.c.value)
        .where(_MEMBERS.c.ven_id == ven_id)
        .order_by(_MEMBERS.c.kind, _MEMBERS.c.value)
    )
    rows = conn.execute(stmt)
    return tuple(TargetRef(kind=TargetKind(kind), value=value) for kind, value in rows)
