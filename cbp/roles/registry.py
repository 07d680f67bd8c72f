"""The TSO's pool registry: which aggregator registered which pools, devices and GCPs
(docs/architecture.md#the-cbp-profile-on-openadr).

Owns the registry the TSO builds from the aggregators' METADATA oadrRegisterReports, and its
rebuild from what the VTN storage holds, so a TSO restarted on the same database knows every
pool the aggregators registered without their registering again.

Invariants:
- A VEN's oadrRegisterReport is its whole set of reports (profile 8.3, as the VTN stores it):
  registering replaces that VEN's pools, and the GCPs it owns are exactly its pools' GCPs.
- A GCP belongs to at most one aggregator. A registration naming a GCP another aggregator holds
  is refused whole (454), and the VEN keeps what it had.
- The rebuild reads only stored METADATA the TSO accepted: the VTN stores a VEN's descriptions
  and the TSO's subscriptions together, only once the TSO's hook accepted them, and a stored
  pool report counts only when a subscription to it lists the same rIDs. VENs are replayed in
  the order they registered, so a GCP goes to the aggregator that registered it first.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from schemas import Codec, InvalidData, RegisterReport, Report
from vtn.storage import Storage

from .messages import TELEMETRY_SUFFIX, PoolDevice, parse_pool_devices

__all__ = ["PoolRegistry", "stored_pool_reports"]

Pools = dict[str, tuple[PoolDevice, ...]]  # pool id -> devices


def _pool_reports(reports: Iterable[Report]) -> tuple[Report, ...]:
    return tuple(r for r in reports if r.report_specifier_id.endswith(TELEMETRY_SUFFIX))


class PoolRegistry:
    """Pools by aggregator venID, and each GCP pseudonym's aggregator."""

    __slots__ = ("gcp_owner", "pools")

    def __init__(self) -> None:
        self.pools: dict[str, Pools] = {}  # ven -> pool -> devices
        self.gcp_owner: dict[str, str] = {}  # GCP pseudonym -> aggregator venID

    def register(self, ven_id: str, reports: Iterable[Report]) -> tuple[str, ...]:
        """Take a VEN's registration (its pool reports; others are ignored) in place of its
        previous one; returns its pool ids. InvalidData (454) if another aggregator holds one
        of its GCPs, and then nothing changes."""
        parsed = [parse_pool_devices(r) for r in _pool_reports(reports)]
        pools = {pool_id: devices for pool_id, devices, _ in parsed}
        gcps = {g for _, _, listed in parsed for g in listed}
        taken = sorted(g for g in gcps if self.gcp_owner.get(g, ven_id) != ven_id)
        if taken:
            raise InvalidData(f"{len(taken)} GCP(s) are already registered by another aggregator")
        for gcp in [g for g, owner in self.gcp_owner.items() if owner == ven_id]:
            del self.gcp_owner[gcp]
        self.gcp_owner.update(dict.fromkeys(gcps, ven_id))
        if pools:
            self.pools[ven_id] = pools
        else:
            self.pools.pop(ven_id, None)
        return tuple(pools)

    def forget(self, ven_id: str, pseudonyms: frozenset[str]) -> int:
        """Drop the VEN's devices and GCPs named by ``pseudonyms`` (an erasure notice);
        returns how many devices went."""
        for gcp in pseudonyms.intersection(self.gcp_owner):
            if self.gcp_owner[gcp] == ven_id:
                del self.gcp_owner[gcp]
        gone = 0
        pools = self.pools.get(ven_id, {})
        for pool_id, devices in pools.items():
            kept = tuple(d for d in devices if d.pseudonym not in pseudonyms)
            gone += len(devices) - len(kept)
            pools[pool_id] = kept
        return gone

    def devices(self, ven_id: str, pool_id: str) -> tuple[PoolDevice, ...]:
        return self.pools.get(ven_id, {}).get(pool_id, ())

    def knows(self, ven_id: str, pool_id: str) -> bool:
        return pool_id in self.pools.get(ven_id, {})


async def stored_pool_reports(storage: Storage,
                              codec: Codec) -> tuple[tuple[str, tuple[Report, ...]], ...]:
    """(venID, its accepted pool reports) for every active VEN with any, in the order they
    registered (the registration time of their stored METADATA, then venID)."""
    found: list[tuple[datetime, str, tuple[Report, ...]]] = []
    for registration in await storage.vens.active():
        ven_id = registration.ven_id
        stored = [d for d in await storage.reports.descriptions(ven_id)
                  if d.report_specifier_id.endswith(TELEMETRY_SUFFIX)]
        if not stored:
            continue
        subscribed = {(r.report_specifier_id, r.r_ids)
                      for r in await storage.reports.requests(ven_id)}
        reports: list[Report] = []
        for description in stored:
            if (description.report_specifier_id, description.r_ids) not in subscribed:
                continue  # not subscribed: not a pool the TSO accepted
            message = codec.decode(description.payload)
            assert isinstance(message, RegisterReport)
            reports.extend(message.reports)
        if reports:
            found.append((min(d.registered_at for d in stored), ven_id, tuple(reports)))
    found.sort(key=lambda item: (item[0], item[1]))
    return tuple((ven_id, reports) for _, ven_id, reports in found)
