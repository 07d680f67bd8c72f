"""VEN registrations to fill a VTN's storage with in tests (IDs with leading zeros, both
transports), and a start time on the night Europe/Amsterdam jumps to summer time."""

from __future__ import annotations

from datetime import UTC, datetime

from vtn.storage import Storage, VenRegistration

__all__ = ["T0", "register", "ven"]

T0 = datetime(2026, 3, 29, 0, 45, tzinfo=UTC)  # the night Europe/Amsterdam jumps to summer time


def ven(n: int, *, at: datetime = T0) -> VenRegistration:
    """VEN number ``n``: odd numbers pull, even ones take pushes."""
    return VenRegistration(
        ven_id=f"{n:06d}",  # leading zeros must survive: IDs are strings
        registration_id=f"reg-{n}",
        fingerprint=f"AA:BB:{n:05d}",
        ven_name=f"ven {n}",
        transport_address=None if n % 2 else f"https://ven{n}.example/",
        http_pull_model=bool(n % 2),
        created_at=at,
    )


async def register(storage: Storage, count: int) -> list[str]:
    """Register :func:`ven` ``(0 .. count-1)``; their venIDs."""
    return [(await storage.vens.register(ven(n))).ven_id for n in range(count)]
