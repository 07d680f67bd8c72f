"""The outbound filter on real encoded OpenADR messages (its allow-list, deny-list scans and k
check), the k-threshold generalisation, and per-device values as shares of rated power."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import privacy
import schemas
from privacy import ActivationWindow, IdentityVault, OutboundFilter, OutboundPolicy
from schemas import (
    ItemBase,
    ItemKind,
    PowerAttributes,
    ReadingType,
    RegisterReport,
    Report,
    ReportDescription,
    ReportInterval,
    ReportPayload,
    ReportType,
    SiScale,
    UpdateReport,
)
from tests.kit.vaults import WHO, Household

TSO = "TSO:TENNET-NL"
ACT = datetime(2025, 3, 14, 14, 3, tzinfo=UTC)
WINDOW = ActivationWindow(start=ACT - timedelta(minutes=5), end=ACT + timedelta(minutes=15))
POLICY = OutboundPolicy(pool_ids=frozenset({"VDB-AFRR-01"}),
                        report_specifier_ids=frozenset({"TELEMETRY-VDB-AFRR-01"}),
                        report_names=frozenset({"TELEMETRY_USAGE"}))
REQUEST = "0b6c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"


def telemetry(
    rid: str, *, value: float = 0.75, at: datetime = ACT, request_id: str = REQUEST,
    specifier: str = "TELEMETRY-VDB-AFRR-01", ven_id: str = "AGG-VDB", uid: str | None = None,
) -> bytes:  # fmt: skip
    interval = ReportInterval(
        dtstart=at, duration=timedelta(seconds=4), uid=uid,
        payloads=(ReportPayload(r_id=rid, value=value),),
    )
    report = Report(
        report_request_id="rr-1", report_specifier_id=specifier, created_date_time=ACT,
        report_name="TELEMETRY_USAGE", intervals=(interval,),
    )  # fmt: skip
    return schemas.encode(UpdateReport(request_id=request_id, reports=(report,), ven_id=ven_id))


@pytest.fixture
def gate(vault: IdentityVault) -> OutboundFilter:
    gate = OutboundFilter(POLICY, vault=vault)
    gate.echoes.learn(("AGG-VDB", "rr-1"))  # the venID and report request the TSO assigned
    return gate


@pytest.fixture
def psn(vault: IdentityVault, household: Household) -> str:
    return vault.pseudonyms.of(household.device.device_uuid, TSO, "balancing-validation",
                               "2025-03", **WHO)


def test_clean_per_device_telemetry_passes_unchanged(gate: OutboundFilter, psn: str) -> None:
    data = telemetry(psn)
    assert gate.admit_xml(data, windows=(WINDOW,)) is data
    pool = telemetry("VDB-AFRR-01", value=3.0123, at=ACT + timedelta(hours=3))
    assert gate.admit_xml(pool) is pool  # pool rows: no window or resolution rule


def test_refuses_a_message_carrying_an_ean(
    gate: OutboundFilter, psn: str, household: Household, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="crowdflex.privacy.outbound"),
        pytest.raises(privacy.OutboundRefused, match="EAN") as refused,
    ):
        gate.admit_xml(
            telemetry(psn, request_id=f"req-{household.prosumer.ean}"), windows=(WINDOW,)
        )
    assert any("EAN" in f for f in refused.value.findings)
    assert household.prosumer.ean not in str(refused.value)  # the refusal does not leak it again
    assert "refused, nothing sent" in caplog.text


def test_refuses_an_unknown_ean_shaped_number(psn: str) -> None:
    bare = OutboundFilter(POLICY)  # no vault: the shape alone is enough
    with pytest.raises(privacy.OutboundRefused, match="EAN-shaped"):
        bare.admit_xml(telemetry(psn, specifier="871690000000000042"), windows=(WINDOW,))


@pytest.mark.parametrize("where", ["request_id", "specifier", "ven_id"])
def test_refuses_vault_values_anywhere(
    gate: OutboundFilter, psn: str, household: Household, where: str
) -> None:
    uuid = household.device.device_uuid
    leaks = {
        "postcode": ("Dutch-postcode", "3511AB"),
        "device_uuid": ("vault device_uuid", str(uuid)),
        "device_uuid hex": ("vault device_uuid", uuid.hex.upper()),
        "serial": ("vault serial", f"x-{household.device.serial}"),
        "name": ("vault name", household.prosumer.name),
        "sha256 serial": (
            "unkeyed sha256",
            hashlib.sha256(household.device.serial.encode()).hexdigest(),
        ),
    }
    for expected, leak in leaks.values():
        with pytest.raises(privacy.OutboundRefused, match=expected):
            gate.admit_xml(telemetry(psn, **{where: leak}), windows=(WINDOW,))


def test_rid_must_be_a_pseudonym_or_a_configured_id(gate: OutboundFilter) -> None:
    with pytest.raises(privacy.OutboundRefused, match="rID: value"):
        gate.admit_xml(telemetry("device-42"), windows=(WINDOW,))


def test_per_device_rows_only_inside_windows_and_on_the_grid(
    gate: OutboundFilter, psn: str
) -> None:
    with pytest.raises(privacy.OutboundRefused, match="outside activation windows"):
        gate.admit_xml(telemetry(psn, at=ACT + timedelta(hours=1)), windows=(WINDOW,))
    with pytest.raises(privacy.OutboundRefused, match="outside activation windows"):
        gate.admit_xml(telemetry(psn))  # idle: no window at all
    with pytest.raises(privacy.OutboundRefused, match=r"not a share in \[-1, 1\] on the 0\.01"):
        gate.admit_xml(telemetry(psn, value=0.755), windows=(WINDOW,))
    with pytest.raises(privacy.OutboundRefused, match="not a share"):
        gate.admit_xml(telemetry(psn, value=7.5), windows=(WINDOW,))  # a kW value, not a share


def test_doctype_is_refused(gate: OutboundFilter) -> None:
    with pytest.raises(privacy.OutboundRefused, match="DOCTYPE"):
        gate.admit_xml(b"<!DOCTYPE x><x/>")


def test_an_element_without_a_rule_or_an_unlearned_foreign_id_is_refused(
    gate: OutboundFilter, psn: str
) -> None:
    data = telemetry(psn)
    with pytest.raises(privacy.OutboundRefused, match="venID: value"):
        gate.admit_xml(telemetry(psn, ven_id="AGG-OTHER"), windows=(WINDOW,))  # never sent to us
    unknown = data.replace(b"<ei:reportName>", b"<ei:reportName>x").replace(
        b"TELEMETRY_USAGE</ei:reportName>", b"TELEMETRY_USAGE</ei:reportName>")
    with pytest.raises(privacy.OutboundRefused, match="reportName: value"):
        gate.admit_xml(unknown, windows=(WINDOW,))
    with pytest.raises(privacy.OutboundRefused, match="not in the outbound allow-list"):
        note = b"<oadr:note>Tesla Model Y</oadr:note></oadr:oadrUpdateReport>"
        gate.admit_xml(data.replace(b"</oadr:oadrUpdateReport>", note), windows=(WINDOW,))


@pytest.mark.parametrize("uid", [
    "0612345678",                  # a phone number is digits, not a sequence number
    "1" * 200,
    "\u0661\u0662\u0663",         # digits to str.isdigit, not to the wire's grammar
    "VDB-AFRR-01:Tesla-Model-Y",   # free text behind the pool id
    "VDB-AFRR-01:2025-03-14:57:up:Tesla",
    "OTHER-POOL:2025-03-14:57:up",
])
def test_an_interval_uid_carries_no_free_text_or_long_number(
    gate: OutboundFilter, uid: str
) -> None:
    """The audit of #11's allow-list: a uid is a short sequence number, an offer id of a
    configured pool on the ISP grid, or a pseudonym; the README promises nothing else leaves."""
    def pool(uid: str) -> bytes:
        return telemetry("VDB-AFRR-01", value=3.0, at=ACT + timedelta(hours=3), uid=uid)

    for fine in ("0", "9999", "VDB-AFRR-01:2025-03-14:57:up", "VDB-AFRR-01:2025-03-14:1439:down"):
        assert gate.admit_xml(pool(fine))
    with pytest.raises(privacy.OutboundRefused, match="text: value"):
        gate.admit_xml(pool(uid))


@pytest.mark.parametrize(("hertz", "voltage"), [(50.0, 7.37), (11.04, 230.0)])
def test_a_device_rating_cannot_ride_in_the_power_attributes(
    gate: OutboundFilter, psn: str, hertz: float, voltage: float
) -> None:
    """The audit of #11's allow-list: "numbers on their grid" holds for an itemBase too; its
    hertz and voltage are the grid's nominal 50 and 230, so they carry no device's rating."""

    def registration(attributes: PowerAttributes) -> bytes:
        unit = ItemBase.of(ItemKind.POWER_REAL, scale=SiScale.KILO, power_attributes=attributes)
        row = ReportDescription(r_id=psn, report_type=ReportType.USAGE, item_base=unit,
                                reading_type=ReadingType.DERIVED)
        report = Report(report_request_id="0", report_specifier_id="TELEMETRY-VDB-AFRR-01",
                        created_date_time=ACT, report_name="TELEMETRY_USAGE",
                        duration=timedelta(0), descriptions=(row,))
        return schemas.encode(RegisterReport(request_id=REQUEST, reports=(report,),
                                             ven_id="AGG-VDB"))

    plain = registration(PowerAttributes())
    assert gate.admit_xml(plain) is plain
    with pytest.raises(privacy.OutboundRefused, match=r"(hertz|voltage): value .* not allowed"):
        gate.admit_xml(registration(PowerAttributes(hertz=hertz, voltage=voltage)))


def test_a_request_id_is_a_random_uuid_not_a_hash_in_uuid_form(gate: OutboundFilter,
                                                                psn: str) -> None:
    """A name-based UUID of an identifier is an unkeyed hash of it: "request and report ids are
    random UUIDs" (version 4), so uuid5/uuid3 of an EAN cannot leave as a requestID."""
    ean = "871690000000000042"
    assert gate.admit_xml(telemetry(psn, request_id=schemas.new_id()), windows=(WINDOW,))
    for hashed in (uuid.uuid5(uuid.NAMESPACE_OID, ean), uuid.uuid3(uuid.NAMESPACE_OID, ean)):
        with pytest.raises(privacy.OutboundRefused, match="requestID: value"):
            gate.admit_xml(telemetry(psn, request_id=str(hashed)), windows=(WINDOW,))


def test_a_pseudonym_in_an_interval_uid_names_no_measurement(gate: OutboundFilter,
                                                              psn: str) -> None:
    """An erasure notice names a pseudonym per interval in its xcal:uid, with the marker value
    1; a measurement keyed that way (under a pool rID, at any time) would escape the rules for
    per-device rows: "only around that activation", "as a share of rated power"."""
    later = ACT + timedelta(hours=3)
    marker = telemetry("VDB-AFRR-01", value=1.0, at=later, uid=psn)
    assert gate.admit_xml(marker) is marker
    with pytest.raises(privacy.OutboundRefused, match="named by a pseudonym"):
        gate.admit_xml(telemetry("VDB-AFRR-01", value=7.4, at=later, uid=psn))


@pytest.mark.parametrize(("where", "hostile", "refusal"), [
    ("after the root", b"<!-- Jan Jansen, 3511AB -->", "outside the root"),
    ("a namespace URI", b'<ei:reportName xmlns:x="urn:jan-jansen">', "namespace"),
    ("an element name", b"<ei:JanJansen/><ei:reportName>", "not valid against"),
])
def test_names_and_nodes_outside_the_rules_carry_no_text(
    gate: OutboundFilter, where: str, hostile: bytes, refusal: str
) -> None:
    """The allow-list judges text nodes and attribute values; an element name, a namespace URI
    or a comment after the root is text too, so the document's shape is held to the 2.0b XSD
    set (its elements and namespaces), and nothing may follow or precede the root."""
    pool = telemetry("VDB-AFRR-01", value=3.0, at=ACT + timedelta(hours=3))
    assert gate.admit_xml(pool) is pool
    if where == "after the root":
        changed = pool + hostile
    else:
        changed = pool.replace(b"<ei:reportName>", hostile)
    with pytest.raises(privacy.OutboundRefused, match=refusal):
        gate.admit_xml(changed)


def _check_k(result: dict[int, tuple[str, ...]], k: int) -> None:
    groups = Counter(result.values())
    if len(groups) > 1 or any(v != privacy.GENERALISED for v in next(iter(groups), ())):
        assert min(groups.values()) >= k, groups


def test_generalise_lifts_small_groups_one_attribute_at_a_time() -> None:
    fleet = ([("ev", "11kW+", "NL")] * 40 + [("ev", "7-11kW", "NL")] * 6
             + [("ev", "3-7kW", "NL")] * 5 + [("heat_pump", "3-7kW", "NL")] * 12
             + [("heat_pump", "11kW+", "NL")] + [("battery", "3-7kW", "NL")] * 3)
    table = dict(enumerate(fleet))
    result = privacy.generalise(table, k=10, order=(1, 0, 2))
    assert set(result) == set(table)  # nothing suppressed, nothing added
    _check_k(result, 10)
    counts = Counter(result.values())
    assert counts[("ev", "11kW+", "NL")] == 40  # large enough: untouched
    assert counts[("heat_pump", "3-7kW", "NL")] == 12
    # the two small EV buckets merge as (ev, OTHER) = 11; the lone heat pump and the 3
    # batteries give up class and zone too, and stay 4 < k: the smallest group left (the 11)
    # is generalised into them
    assert counts == {("ev", "11kW+", "NL"): 40, ("heat_pump", "3-7kW", "NL"): 12,
                      ("OTHER", "OTHER", "OTHER"): 15}


def test_generalise_never_leaves_a_small_group() -> None:
    for sizes in ((30, 12, 2), (9, 9), (3,), (10, 1), (50, 9, 9, 1)):
        fleet = [(f"c{i}", "b", "NL") for i, n in enumerate(sizes) for _ in range(n)]
        result = privacy.generalise(dict(enumerate(fleet)), k=10, order=(1, 0, 2))
        assert len(result) == sum(sizes)
        _check_k(result, 10)
    assert privacy.generalise({}, k=10, order=(0,)) == {}
    assert set(privacy.generalise({1: ("a", "b", "c")}, k=10, order=(1, 0, 2)).values()) == {
        ("OTHER", "OTHER", "OTHER")}  # a pool under k says nothing about its devices
    with pytest.raises(ValueError):
        privacy.generalise({1: ("a",)}, k=0, order=(0,))
    with pytest.raises(ValueError):
        privacy.generalise({1: ("a", "b")}, k=2, order=(0,))


def test_device_share_hides_the_rating_the_bucket_hides() -> None:
    # an 11 kW and a 7.4 kW charger in one "7-11kW" bucket, both flat out: indistinguishable
    assert privacy.device_share(Decimal("11.0"), Decimal("11")) == Decimal("1.00")
    assert privacy.device_share(Decimal("7.4"), Decimal("7.4")) == Decimal("1.00")
    assert privacy.device_share(Decimal("3.7"), Decimal("11")) == Decimal("0.34")
    assert privacy.device_share(Decimal("12"), Decimal("11")) == 1  # clipped, never above 1
    assert privacy.device_share(Decimal("-30"), Decimal("11")) == -1
    with pytest.raises(ValueError):
        privacy.device_share(Decimal(1), Decimal(0))
