"""Issue 11 at the TSO boundary of the running nodes (real TSO, aggregator and device VENs over
mutual TLS, :mod:`tests.cbp.rolekit`): hostile cases are generalised or refused before the wire,
and a withdrawn consent stops dispatch (flexibility service) or per-device rows (balancing
validation) from the next activation or message on.

Each probe checks both sides: the aggregator refused (the codec counted it, OutboundRefused was
raised) and nothing new reached the TSO (its capture folder and registry are unchanged), so a
pass-through filter or a device kept after withdrawal fails here.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from cbp.cli import main
from cbp.cli._onboard import import_onboarding, read_devices
from cbp.devices import DeviceClass
from cbp.roles.messages import TELEMETRY_SUFFIX, PoolDevice, pool_metadata, sample_intervals
from cbp.roles.tso import Activation
from privacy import (
    ONBOARDING_PURPOSE,
    VALIDATION_PURPOSE,
    ActivationWindow,
    FileKeyProvider,
    IdentityVault,
    OutboundRefused,
    PrivacyConfig,
)
from privacy.keys import new_key_line
from tests.kit.pki import Pki

from .rolekit import Rig, SteadyLoad, build_rig
from .tsoview import device_rows, registrations

K = 3


def _mixed(i: int) -> SteadyLoad:
    """7 EV chargers, 3 heat pumps and one lone battery."""
    if i < 7:
        return SteadyLoad(20.0, rated_kw=22.0)
    if i < 10:
        return SteadyLoad(6.0, rated_kw=7.0, device_class=DeviceClass.HEAT_PUMP)
    return SteadyLoad(4.0, rated_kw=5.0, device_class=DeviceClass.BATTERY)


def _captured(rig: Rig) -> int:
    return len(list(rig.captures.glob("*-request.xml")))


async def _refused_before_the_wire(rig: Rig, attempt: object) -> OutboundRefused:
    """Run ``attempt`` (a coroutine sending something hostile); it must be refused by the
    aggregator's codec and nothing may reach the TSO."""
    codec, before = rig.aggregator.codec, _captured(rig)
    refused = codec.refused
    with pytest.raises(OutboundRefused) as caught:
        await attempt  # type: ignore[misc]
    assert codec.refused == refused + 1
    assert _captured(rig) == before
    return caught.value


async def test_hostile_cases_are_generalised_or_refused_before_the_wire(
        tmp_path: Path, pki: Pki) -> None:
    rig = await build_rig(tmp_path, pki, devices=11, loads=_mixed,
                          privacy=PrivacyConfig(k_threshold=K))
    agg, s = rig.aggregator, rig.settings
    upstream = agg.upstream
    assert upstream is not None and upstream.registration is not None
    ven_id = upstream.registration.ven_id
    try:
        # a lone device class: generalised (with the smallest group, to reach k) before the wire
        registered = rig.tso.devices(ven_id, s.pool_id)
        shown = Counter((d.device_class, d.power_bucket) for d in registered)
        assert shown == {("ev_charger", "11kW+"): 7, ("OTHER", "OTHER"): 4}
        assert b"battery" not in b"".join(f.read_bytes() for f in rig.captures.glob("*.xml"))

        entries = list(agg.book.registered())
        # free text in groupName: a lone one is generalised away like any small group ...
        entries[0].device_class = "Tesla Model Y"
        await agg.register_pool()
        assert "Tesla Model Y" not in {d.device_class for d in rig.tso.devices(ven_id, s.pool_id)}
        # ... and k devices carrying it are refused by the allow-list, naming the element
        entries[0].device_class = DeviceClass.EV_CHARGER.value
        held = set(rig.tso.devices(ven_id, s.pool_id))
        for entry in entries[1:5]:  # four EV chargers: a group over k, not merged away
            entry.power_bucket = "exactly 7.37 kW"
        refusal = await _refused_before_the_wire(rig, agg.register_pool())
        assert any(f.startswith("groupName: value") for f in refusal.findings)
        assert set(rig.tso.devices(ven_id, s.pool_id)) == held  # the TSO kept what it had

        # a non-pseudonym partyID (a customer number where a GCP pseudonym belongs)
        devices = tuple(PoolDevice(pseudonym=d.pseudonym, device_class="OTHER",
                                   power_bucket="OTHER", zone="OTHER") for d in held)
        metadata = pool_metadata(s.pool_id, devices, gcps=("customer-000042",),
                                 created=rig.clock.now, sample_period=rig.period,
                                 market_context=s.market_context)
        refusal = await _refused_before_the_wire(rig, upstream.register_metadata((metadata,)))
        assert any(f.startswith("partyID: value") for f in refusal.findings)

        # a per-device measurement off the grid, and one in kW instead of a share, even inside
        # an activation window
        name = entries[-1].pseudonym
        agg.windows.append(ActivationWindow(start=rig.clock.now - timedelta(minutes=1),
                                            end=rig.clock.now + timedelta(minutes=1)))
        request_id = agg.requests[s.pool_id + TELEMETRY_SUFFIX]
        for value in (0.123, 11.0):
            refusal = await _refused_before_the_wire(rig, upstream.send_report(
                request_id, sample_intervals([(rig.clock.now, [(name, value)])], rig.period),
                report_specifier_id=s.pool_id + TELEMETRY_SUFFIX))
            assert any("is not a share" in f for f in refusal.findings)
    finally:
        await rig.close()


async def _metered(rig: Rig, mw: str) -> Activation:
    """One activation at ``mw`` for six samples, run until its per-device rows were sent."""
    activation = await rig.activation((Decimal(mw),) * 6)
    await rig.dispatched(activation)
    await rig.run_until(activation.setpoints[-1].at + 12 * rig.period)
    assert activation.event_id in rig.aggregator.status().msp_sent
    return activation


def _dispatched(rig: Rig) -> set[UUID]:
    """The devices of the aggregator's latest activation."""
    latest = list(rig.aggregator.activations.values())[-1]
    return set(latest.device_events)


async def test_withdrawn_flexibility_consent_stops_dispatch_from_the_next_activation(
        tmp_path: Path, pki: Pki) -> None:
    rig = await build_rig(tmp_path, pki, devices=7)
    try:
        await _metered(rig, "0.14")  # 7 devices x 20 kW: every device is dispatched
        every = _dispatched(rig)
        device = sorted(every)[0]
        assert len(every) == 7
        # by the command, on the vault file the running node holds open (the DPIA: "read from
        # the file at every consent check")
        assert main(["privacy", "withdraw", "--vault", str(rig.vault.path), "--key-file",
                     str(tmp_path / "vault.key"), "--purpose", ONBOARDING_PURPOSE, "--prosumer",
                     rig.aggregator.book.by_uuid[device].prosumer_id]) == 0
        await _metered(rig, "0.14")
        after = _dispatched(rig)
        assert device not in after and after == every - {device}
        # nor is its flex offered any more
        first, second = (a.offer.available_mw for a in rig.tso.accepted_offers())
        assert first is not None and second is not None and second < first
    finally:
        await rig.close()


async def test_withdrawn_validation_consent_stops_per_device_rows_from_the_next_message(
        rig: Rig) -> None:
    first = await _metered(rig, "0.12")
    book = rig.aggregator.book
    device = sorted(_dispatched(rig))[0]
    name = book.by_uuid[device].pseudonym
    rows = device_rows(rig.captures)
    assert {r.pseudonym for r in rows} == {e.pseudonym for e in book.registered()}
    rig.vault.consents.withdraw(book.by_uuid[device].prosumer_id,
                                VALIDATION_PURPOSE)
    seen = len(rows)
    second = await _metered(rig, "0.12")
    assert device in _dispatched(rig)  # still in the service: dispatched, but not metered
    later = device_rows(rig.captures)[seen:]
    assert later and second.setpoints[0].at > first.setpoints[-1].at
    assert name not in {r.pseudonym for r in later}
    assert {r.pseudonym for r in later} == {e.pseudonym for e in book.registered()} - {name}
    assert rig.aggregator.status().msp_sent[second.event_id] == 5
    (registration,) = registrations(rig.captures)  # same month: no re-registration meanwhile
    # six devices, fewer than k = 10: nothing about them but their pseudonyms
    assert {n for _, names in registration.devices for n in names} == {
        "class:OTHER", "power:OTHER", "zone:OTHER"}


def test_onboarding_records_both_consents_the_running_path_checks(tmp_path: Path) -> None:
    source, devices = tmp_path / "onboarding.csv", tmp_path / "devices.csv"
    source.write_text(
        "ven_id,prosumer_id,name,postcode,ean,contract_id,serial,device_class,rated_kw,consent\n"
        "AA:BB,P1,Jan Jansen,1234 AB,871000000000000001,C1,SN1,ev_charger,11,yes\n"
        "CC:DD,P2,Piet Pieters,1234 AC,871000000000000002,C2,SN2,heat_pump,7.4,no\n")
    key = tmp_path / "vault.key"
    key.write_text(new_key_line(1))
    with IdentityVault(tmp_path / "vault.db", FileKeyProvider(key)) as vault:
        done = import_onboarding(source, vault, devices, zone="NL")
        assert (done.added, done.without_consent) == (1, 1)
        assert {c.purpose for c in vault.consents.of("P1") if c.live} == {
            ONBOARDING_PURPOSE, VALIDATION_PURPOSE}
        assert vault.consents.of("P2") == ()
    assert read_devices(devices)[0]["rated_kw"] == "11"
