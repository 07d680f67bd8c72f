"""VEN registrations and memberships (OpenADR 2.0b spec 8.4, EiRegisterParty).

Invariants: a certificate fingerprint belongs to at most one VEN, and a VEN keeps its ven_id when it
registers again with the same certificate (the row is updated in place: new registration_id,
cancelled_at cleared, created_at kept). Memberships (group, resource, party IDs) are what event
targets are matched against; only active (not cancelled) VENs are ever targeted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, or_, select, tuple_, update

from ._engine import Database
from ._models import VenMembershipRow, VenRow
from .records import TargetKind, TargetRef, VenRegistration

__all__ = ["VenRepository"]

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


def _record(row: VenRow) -> VenRegistration:
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


def _values(reg: VenRegistration) -> dict[str, object]:
    return {
        name: getattr(reg, name) for name in ("ven_id", "fingerprint", "created_at", *_REFRESHED)
    }


class VenRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(self, registration: VenRegistration) -> VenRegistration:
        """Store a registration; a fingerprint seen before updates that VEN's row instead.

        Returns the stored registration, whose ven_id is the existing one for a known fingerprint.
        Raises :class:`StorageConflict` if the ven_id or registration_id belongs to another
        fingerprint.
        """
        table = VenRow.__table__
        stmt = self._db.insert(VenRow).values(_values(registration))
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.fingerprint],
            set_={name: getattr(stmt.excluded, name) for name in _REFRESHED},
        ).returning(VenRow)
        async with self._db.write() as session:
            row = (await session.execute(select(VenRow).from_statement(stmt))).scalar_one()
            return _record(row)

    async def get(self, ven_id: str) -> VenRegistration | None:
        async with self._db.read() as session:
            row = await session.get(VenRow, ven_id)
            return None if row is None else _record(row)

    async def by_fingerprint(self, fingerprint: str) -> VenRegistration | None:
        return await self._one(VenRow.fingerprint == fingerprint)

    async def by_registration_id(self, registration_id: str) -> VenRegistration | None:
        return await self._one(VenRow.registration_id == registration_id)

    async def _one(self, condition: object) -> VenRegistration | None:
        async with self._db.read() as session:
            row = (await session.execute(select(VenRow).where(condition))).scalar_one_or_none()  # type: ignore[arg-type]
            return None if row is None else _record(row)

    async def cancel(self, registration_id: str, at: datetime) -> VenRegistration | None:
        """oadrCancelPartyRegistration: mark cancelled (kept for audit). None if unknown."""
        stmt = (
            update(VenRow)
            .where(VenRow.registration_id == registration_id)
            .values(cancelled_at=at)
            .returning(VenRow)
        )
        async with self._db.write() as session:
            result = await session.execute(select(VenRow).from_statement(stmt))
            row = result.scalar_one_or_none()
            return None if row is None else _record(row)

    async def active(self) -> tuple[VenRegistration, ...]:
        stmt = select(VenRow).where(VenRow.cancelled_at.is_(None)).order_by(VenRow.ven_id)
        async with self._db.read() as session:
            return tuple(_record(row) for row in (await session.scalars(stmt)))

    async def set_memberships(self, ven_id: str, members: Iterable[TargetRef]) -> None:
        """Replace the VEN's group/resource/party memberships."""
        rows = [{"ven_id": ven_id, "kind": m.kind.value, "value": m.value} for m in set(members)]
        async with self._db.write() as session:
            await session.execute(delete(VenMembershipRow).where(VenMembershipRow.ven_id == ven_id))
            if rows:
                await session.execute(self._db.insert(VenMembershipRow).values(rows))

    async def memberships(self, ven_id: str) -> tuple[TargetRef, ...]:
        stmt = (
            select(VenMembershipRow.kind, VenMembershipRow.value)
            .where(VenMembershipRow.ven_id == ven_id)
            .order_by(VenMembershipRow.kind, VenMembershipRow.value)
        )
        async with self._db.read() as session:
            return tuple(
                TargetRef(kind=TargetKind(kind), value=value)
                for kind, value in (await session.execute(stmt))
            )

    async def resolve_targets(self, targets: Iterable[TargetRef]) -> tuple[str, ...]:
        """The active VENs an ei:eiTarget addresses: named by venID or by a membership.

        Members of one target are alternatives (any match selects the VEN), as in openleadr and
        the 2.0b profile's use of eiTarget for distribution.
        """
        refs = set(targets)
        direct = [r.value for r in refs if r.kind is TargetKind.VEN]
        indirect = [(r.kind.value, r.value) for r in refs if r.kind is not TargetKind.VEN]
        member = select(VenMembershipRow.ven_id).where(
            tuple_(VenMembershipRow.kind, VenMembershipRow.value).in_(indirect)
        )
        conditions = []
        if direct:
            conditions.append(VenRow.ven_id.in_(direct))
        if indirect:
            conditions.append(VenRow.ven_id.in_(member))
        if not conditions:
            return ()
        stmt = (
            select(VenRow.ven_id)
            .where(VenRow.cancelled_at.is_(None), or_(*conditions))
            .order_by(VenRow.ven_id)
        )
        async with self._db.read() as session:
            return tuple(await session.scalars(stmt))
