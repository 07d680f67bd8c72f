"""A TSO restarted mid-run on the same database loses no pool (issue #5), at role level.

The TSO node is closed for real (its app cleaned up: listener, storage) and a new
:class:`TsoNode` is built on the same SQLite file and served on the same port; the aggregator
does not register again. Asserted:
- the new TSO knows the same pools, devices (pseudonyms, class, power bucket, zone) and GCP
  owners as the old one, rebuilt from the METADATA the VTN stored;
- it accepts the aggregator's next offer (an offer for a pool it did not know is refused), and
  the offer can be awarded and activated;
- a registration the TSO refused (a GCP another aggregator holds) is stored by the VTN all the
  same, but is not restored, even when the first aggregator registered again after it: after
  the restart the GCPs still belong to the first aggregator;
- the registry itself: a VEN's new registration replaces its pools and releases GCPs it dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cbp.roles import TsoNode
from cbp.roles.messages import PoolDevice, pool_metadata
from cbp.roles.registry import PoolRegistry
from schemas import InvalidData, Report
from tests.kit.pki import Pki
from tests.kit.vtn import LoopbackVtn
from ven import Connection, TimeSource, VenClient, VenSettings, VtnRefused
from vtn.app import STORAGE

from .rolekit import Rig, _open_isp, poll_through


async def _restart_tso(rig: Rig) -> TsoNode:
    """Close the TSO node and serve a new one on the same database and port."""
    old = rig.tso
    port = rig.tso_served.port
    await rig.tso_served.close()
    tso = TsoNode(old.config, rig.settings, capture_dir=rig.captures, clock=rig.clock)
    # startup: storage opened, registry rebuilt
    served = await LoopbackVtn.start(tso.app, old.config, port=port)
    rig.tso, rig.tso_served = tso, served
    return tso


def _ven_id(rig: Rig) -> str:
    upstream = rig.aggregator.upstream
    assert upstream is not None and upstream.registration is not None
    return upstream.registration.ven_id


async def test_a_restarted_tso_knows_the_pool_and_takes_offers(rig: Rig) -> None:
    ven_id, pool_id = _ven_id(rig), rig.settings.pool_id
    pools, owners = dict(rig.tso.pools), dict(rig.tso.gcp_owner)
    devices = rig.tso.devices(ven_id, pool_id)
    assert len(devices) == 6 and set(owners.values()) == {ven_id}
    assert {d.pseudonym for d in devices} == {e.pseudonym for e in rig.aggregator.book.registered()}

    tso = await _restart_tso(rig)
    assert tso.pools == pools
    assert tso.gcp_owner == owners
    assert tso.devices(ven_id, pool_id) == devices
    await poll_through(rig)

    isp = _open_isp(tso, rig.settings, rig.clock.now)
    offer = rig.aggregator.build_offer(isp)
    assert offer is not None
    outcome = await rig.aggregator.send_offer(offer)
    assert outcome.accepted, outcome.reason
    assert tso.book.get(offer.offer_id) == offer
    awards = tso.award(isp)
    assert [a.offer_id for a in awards] == [offer.offer_id]


async def test_an_offer_for_an_unregistered_pool_is_refused(rig: Rig) -> None:
    rig.tso.registry.register(_ven_id(rig), ())  # as if the pool had never been registered
    isp = _open_isp(rig.tso, rig.settings, rig.clock.now)
    offer = rig.aggregator.build_offer(isp)
    assert offer is not None
    outcome = await rig.aggregator.send_offer(offer)
    assert not outcome.accepted and "unknown_pool" in outcome.reason
    assert rig.tso.book.get(offer.offer_id) is None


async def test_a_refused_registration_is_not_restored(rig: Rig, pki: Pki,
                                                      tmp_path: Path) -> None:
    """Tried: a second aggregator registers a pool on GCPs the first holds. The TSO refuses it,
    stores none of its METADATA, and a restarted TSO gives every GCP to the first again."""
    first = _ven_id(rig)
    owners = dict(rig.tso.gcp_owner)
    stolen = tuple(PoolDevice(pseudonym=f"psn1_other{i}", device_class="ev_charger",
                              power_bucket="11-22kW", zone="NL") for i in range(len(owners)))
    other = VenClient(VenSettings(
        ven_name="other-aggregator", outbox_key="other",
        connection=Connection(vtn_url=rig.tso_served.url,
                              ssl_context=pki.client_context(ven=pki.vens[1])),
        time=TimeSource(clock=rig.clock)))
    rig.clock.now += rig.period  # each registration below at an instant of its own
    await other.start()
    try:
        second = (await other.register()).ven_id
        with pytest.raises(VtnRefused):
            await other.register_metadata((pool_metadata(
                "other-pool", stolen, gcps=sorted(owners), created=rig.clock.now,
                sample_period=rig.settings.rules.sample_period,
                market_context=rig.settings.market_context),))
    finally:
        await other.close()
    # the refused METADATA is not stored at all
    assert await rig.tso.app[STORAGE].reports.descriptions(second) == ()
    # the first aggregator registers again (same devices): its stored METADATA is now the newer
    rig.clock.now += rig.period
    await rig.aggregator.register_pool()
    assert rig.tso.gcp_owner == owners

    tso = await _restart_tso(rig)
    assert tso.gcp_owner == owners
    assert set(tso.pools) == {first}


def _device(n: int, gcp: str) -> tuple[PoolDevice, str]:
    return PoolDevice(pseudonym=f"psn1_{n}", device_class="ev_charger", power_bucket="7-11kW",
                      zone="NL"), gcp


def _pool(pool_id: str, *devices: tuple[PoolDevice, str]) -> tuple[Report, ...]:
    return (pool_metadata(pool_id, [d for d, _ in devices], gcps=[g for _, g in devices],
                          created=datetime(2026, 1, 5, tzinfo=UTC),
                          sample_period=timedelta(seconds=4), market_context="http://cbp"),)


def test_a_new_registration_replaces_the_pools_and_releases_dropped_gcps() -> None:
    registry = PoolRegistry()
    registry.register("A", _pool("pool-a", _device(1, "g1"), _device(2, "g2")))
    with pytest.raises(InvalidData):
        registry.register("B", _pool("pool-b", _device(3, "g2")))
    assert registry.gcp_owner == {"g1": "A", "g2": "A"} and "B" not in registry.pools
    registry.register("A", _pool("pool-a2", _device(1, "g1")))
    assert set(registry.pools["A"]) == {"pool-a2"} and registry.gcp_owner == {"g1": "A"}
    registry.register("B", _pool("pool-b", _device(3, "g2")))
    assert registry.gcp_owner == {"g1": "A", "g2": "B"}
    registry.register("A", ())
    assert set(registry.pools) == {"B"} and registry.gcp_owner == {"g2": "B"}
