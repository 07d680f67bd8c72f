"""Issue 11: the TSO cannot link one month's devices to the next month's.

A real TSO, aggregator and 30 device VENs (plus 170 registered devices that never report) over
mutual TLS (:mod:`tests.cbp.rolekit`) run two activations, one on each side of a month boundary
(Europe/Amsterdam), with the devices unchanged, each settled. The test then plays the TSO: from
nothing but the captured link (pool registrations, per-device rows, statements) it tries to link
January's pseudonyms to February's by position in the registration, by sort order, by order of
appearance in the metering, by the point of its activation each device was curtailed at, and by
attribute combination (the last two as the expected links of the best guess within the matching
group); the truth comes from the vault. Every attack must link no more devices than a guess
among k: at most ceil(n / k) of n.

The fleet makes the structural leaks the only handle: the devices of a class draw alike, so the
load curve itself (a residual risk of per-device metering, for the DPIA) is not what is measured.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import NAMESPACE_URL, uuid5

from cbp.devices import DeviceClass
from cbp.roles import AggregatorNode, CbpSettings
from privacy import ONBOARDING_PURPOSE, FileKeyProvider, IdentityVault, PrivacyConfig
from privacy.keys import new_key_line
from tests.kit.pki import Pki

from .rolekit import Rig, SteadyLoad, build_rig, vtn_config
from .tsoview import Registration, Row, device_rows, registrations

K = 10
JANUARY, FEBRUARY = "2027-01", "2027-02"
#: 23:55 in Amsterdam on 31 January: the boundary comes five minutes in
START = datetime(2027, 1, 31, 22, 55, tzinfo=UTC)
BOUNDARY = datetime(2027, 1, 31, 23, 0, tzinfo=UTC)
RAMP = tuple(Decimal(v) for v in ("0.1", "0.2", "0.3", "0.3", "0.2", "0.1"))


def _fleet(i: int) -> SteadyLoad:
    """20 EV chargers (11kW+), 9 heat pumps (7-11kW) and one lone battery (3-7kW), with fixed
    ids so that, with the seeded ``order``, every figure but the sort order is reproducible."""
    if i < 20:
        sim = SteadyLoad(20.0, rated_kw=22.0)
    elif i < 29:
        sim = SteadyLoad(6.0, rated_kw=7.0, device_class=DeviceClass.HEAT_PUMP)
    else:
        sim = SteadyLoad(4.0, rated_kw=5.0, device_class=DeviceClass.BATTERY)
    sim.device_id = uuid5(NAMESPACE_URL, f"crowdflex-linkage-{i}")
    return sim


async def _silent(rig: Rig, count: int) -> None:
    """``count`` more EV chargers that registered but never report (so never metered): they
    make the pool big enough that the sort-order figure, which varies with the random salts,
    stays far under its bound by chance alone."""
    for i in range(count):
        prosumer, device = f"S{i:05d}", uuid5(NAMESPACE_URL, f"crowdflex-silent-{i}")
        rig.vault.prosumers.add(prosumer_id=prosumer, name=f"Silent {i}", postcode="1234 AB",
                                ean=f"872{i:015d}", contract_id=f"CS-{i:05d}")
        rig.vault.consents.grant(prosumer, ONBOARDING_PURPOSE)
        rig.vault.devices.onboard(prosumer_id=prosumer, serial=f"SS-{i:08d}",
                                  device_class="ev_charger", rated_kw=Decimal(22), zone="NL",
                                  device_uuid=device)
        rig.aggregator.onboard(ven_id=f"silent-{i}", device_uuid=device, prosumer_id=prosumer,
                               device_class="ev_charger", power_bucket="11kW+",
                               rated_kw=Decimal(22))
        rig.aggregator.book.by_uuid[device].registered = True
    await rig.aggregator.register_pool()


async def _meter(rig: Rig) -> None:
    """One activation, run until its per-device rows went to the TSO and its statement came
    back."""
    activation = await rig.activation(RAMP)
    await rig.dispatched(activation)
    await rig.run_until(activation.setpoints[-1].at + 12 * rig.period)
    assert activation.event_id in rig.aggregator.status().msp_sent
    await rig.tso.settle(activation.event_id)
    await rig.step(rig.clock.now + rig.period)  # the aggregator polls the statement in
    assert activation.event_id in rig.aggregator.status().statements


def _zip_links(first: Sequence[str], second: Sequence[str], truth: dict[str, str]) -> int:
    return sum(truth.get(a) == b for a, b in zip(first, second, strict=False))


def _appearance(rows: Sequence[Row], names: set[str]) -> list[str]:
    return list(dict.fromkeys(r.pseudonym for r in rows if r.pseudonym in names))


def _curtailed(rows: Sequence[Row], names: set[str]) -> dict[str, int]:
    """Each device's timing group: the rank of the instant its value first fell below where it
    started (devices curtailed at one instant share a group)."""
    first: dict[str, float] = {}
    when: dict[str, datetime] = {}
    for row in rows:
        if row.pseudonym not in names:
            continue
        start = first.setdefault(row.pseudonym, row.value)
        if row.value < start and row.pseudonym not in when:
            when[row.pseudonym] = row.at
    instants = sorted(set(when.values()))
    return {p: instants.index(at) for p, at in when.items()}


def _timing_links(first: dict[str, int], second: dict[str, int], truth: dict[str, str]) -> float:
    """Expected links of the best timing attack: a February device is guessed among the
    January devices curtailed at the same point of their activation (1/size of that group)."""
    back = {b: a for a, b in truth.items()}
    sizes = Counter(first.values())
    return sum(1 / sizes[group] for p, group in second.items()
               if first.get(back[p]) == group)


def _combo_links(first: Registration, second: Registration) -> float:
    """Expected links of the best attribute attack: within a combination shared by g devices in
    both months a guess is right 1/g of the time, so each combination yields one link."""
    one = Counter(names for _, names in first.devices)
    two = Counter(names for _, names in second.devices)
    return float(sum(1 for combo in one if combo in two))


async def test_two_months_of_tso_data_link_no_more_devices_than_chance(
        tmp_path: Path, pki: Pki) -> None:
    rig = await build_rig(tmp_path, pki, devices=30, loads=_fleet, start=START,
                          order=random.Random(11), privacy=PrivacyConfig(k_threshold=K))
    try:
        await _silent(rig, 170)
        await _meter(rig)
        assert rig.clock.now < BOUNDARY
        await rig.run_until(BOUNDARY + rig.period)
        await _meter(rig)
        devices = list(rig.aggregator.book.by_uuid)
        s = rig.settings
        who = {"requested_by": "test", "reason": "the linkage test's ground truth"}
        truth = {rig.vault.pseudonyms.of(d, s.tso_recipient, s.msp_purpose, JANUARY, **who):
                 rig.vault.pseudonyms.of(d, s.tso_recipient, s.msp_purpose, FEBRUARY, **who)
                 for d in devices}
        upstream = rig.aggregator.upstream
        assert upstream is not None and upstream.registration is not None
        tso_pool = {d.pseudonym for d in rig.tso.devices(upstream.registration.ven_id, s.pool_id)}
    finally:
        await rig.close()

    regs = registrations(rig.captures)[1:]  # the first one, before the silent devices joined
    # the pool went out twice, unchanged but for the month: every pseudonym rotated, and the
    # TSO holds February's registration in place of January's
    assert [set(r.pseudonyms) for r in regs] == [set(truth), set(truth.values())]
    assert tso_pool == set(truth.values())
    january, february = regs
    assert not set(january.gcps) & set(february.gcps) and len(january.gcps) == 200
    assert january.device_parties == february.device_parties == 0  # no household co-membership
    # the statements (x-SETTLEMENT) are about the pool: no device pseudonym in any of them
    settled = [f.read_text() for f in rig.captures.glob("*-reply.xml")
               if "x-SETTLEMENT" in f.read_text() and "settlement-payment-eur" in f.read_text()]
    assert settled and not any("psn1_" in text for text in settled)
    rows = device_rows(rig.captures)
    metered = ({p for p in truth if p in {r.pseudonym for r in rows}},
               {p for p in truth.values() if p in {r.pseudonym for r in rows}})
    assert metered[0] and metered[1], "both months must have per-device rows"
    # per-device values are shares of rated power on the 0.01 grid: an EV at 20 of 22 kW
    assert {round(r.value, 2) for r in rows} <= {0.91, 0.0}
    n_pool, n_metered = len(truth), min(len(metered[0]), len(metered[1]))

    links = {
        "registration position": (_zip_links(january.pseudonyms, february.pseudonyms, truth),
                                  n_pool),
        "sort order": (_zip_links(sorted(january.pseudonyms), sorted(february.pseudonyms),
                                  truth), n_pool),
        "metering order": (_zip_links(_appearance(rows, metered[0]),
                                      _appearance(rows, metered[1]), truth), n_metered),
        "curtailment timing": (_timing_links(_curtailed(rows, metered[0]),
                                             _curtailed(rows, metered[1]), truth), n_metered),
        "attribute combination": (_combo_links(january, february), n_pool),
    }
    for attack, (linked, n) in links.items():
        print(f"{attack}: {linked:.2g} of {n} devices linked (chance bound {math.ceil(n / K)})")
    for attack, (linked, n) in links.items():
        assert linked <= math.ceil(n / K), f"{attack} links {linked} of {n} devices"
    # k holds on what was registered: every attribute combination has k devices
    for reg in regs:
        assert min(Counter(names for _, names in reg.devices).values()) >= K
        assert not any("battery" in n for _, names in reg.devices for n in names)


def test_the_shuffles_and_tie_keys_come_from_the_operating_systems_csprng(
        tmp_path: Path, pki: Pki) -> None:
    """What the test above measures holds against a TSO that models the generator too: the
    shuffles it sees do not come from a Mersenne Twister, whose state enough of them reveal."""
    key_file = tmp_path / "vault.key"
    key_file.write_text(new_key_line(1))
    with IdentityVault(tmp_path / "vault.db", FileKeyProvider(key_file)) as vault:
        node = AggregatorNode(settings=CbpSettings.compressed(),
                              downstream=vtn_config(tmp_path, "aggregator", pki), vault=vault,
                              tso_url="https://127.0.0.1:9", upstream_tls=None,
                              outbox_path=tmp_path / "outbox.db")
        assert isinstance(node._order, random.SystemRandom)
