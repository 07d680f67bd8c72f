"""Report payloads: property round trips (decode(encode(m)) == m, XSD-valid by the oracle) for all
eight EiReport payloads, plus the edges: x- extension tokens, whitespace-collapsed tokens, IDs that
look like numbers, and parts refused when built illegal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import schemas
from schemas import (
    CanceledReport,
    CancelReport,
    CreatedReport,
    CreateReport,
    DataQuality,
    LoadControlState,
    LoadControlValue,
    ReadingType,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportDescription,
    ReportingPeriod,
    ReportInterval,
    ReportName,
    ReportPayload,
    ReportRequest,
    ReportSpecifier,
    ReportType,
    ResourceStatus,
    SamplingRate,
    SpecifierPayload,
    UpdatedReport,
    UpdateReport,
)
from schemas._report_data_xml import (
    PLAIN_BLOCK_AT_LEAST,
    _decode_plain,
    _interval,
    _payload,
    decode_interval,
)
from schemas._wire import STRM
from schemas.units import ItemBase, ItemKind, SiScale

from .strategies import (
    datetimes,
    durations,
    ei_responses,
    extension_tokens,
    finite_floats,
    ids,
    targets,
    uris,
)
from .xsd_oracle import assert_xsd_valid

# ---------------------------------------------------------------- family strategies


T = TypeVar("T")


def _maybe(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.one_of(st.none(), strategy)


def _tuples(strategy: st.SearchStrategy[T], *, min_size: int = 0,
            max_size: int = 3) -> st.SearchStrategy[tuple[T, ...]]:
    return st.lists(strategy, min_size=min_size, max_size=max_size).map(tuple)


item_bases = st.sampled_from([
    ItemBase.megawatts(),
    ItemBase.kilowatts(),
    ItemBase.of(ItemKind.ENERGY_REAL, scale=SiScale.KILO),
    ItemBase.of(ItemKind.VOLTAGE),
    ItemBase.of(ItemKind.CURRENT),
    ItemBase.of(ItemKind.FREQUENCY),
    ItemBase.of(ItemKind.CURRENCY_PER_KWH, units="EUR"),
    ItemBase.of(ItemKind.TEMPERATURE, units="celsius"),
    ItemBase.of(ItemKind.PULSE_COUNT),
])
report_names = st.one_of(st.sampled_from(ReportName), extension_tokens)
report_types = st.one_of(st.sampled_from(ReportType), extension_tokens)
reading_types = st.one_of(st.sampled_from(ReadingType), extension_tokens)
qualities = st.one_of(st.sampled_from(DataQuality), extension_tokens)

control_values = st.builds(
    LoadControlValue,
    current=finite_floats,
    min=_maybe(finite_floats),
    max=_maybe(finite_floats),
    normal=_maybe(finite_floats),
)
statuses = st.builds(
    ResourceStatus,
    online=st.booleans(),
    manual_override=st.booleans(),
    load_control_state=_maybe(st.builds(
        LoadControlState,
        capacity=_maybe(control_values),
        level_offset=_maybe(control_values),
        percent_offset=_maybe(control_values),
        set_point=_maybe(control_values),
    )),
)
report_payloads = st.builds(
    ReportPayload,
    r_id=ids,
    value=st.one_of(finite_floats, statuses),
    confidence=_maybe(st.integers(0, 100)),
    accuracy=_maybe(finite_floats),
    data_quality=_maybe(qualities),
)
report_intervals = st.builds(
    ReportInterval,
    payloads=_tuples(report_payloads, min_size=1, max_size=2),
    dtstart=_maybe(datetimes),
    duration=_maybe(durations),
    uid=_maybe(ids),
)
sampling_rates = st.builds(
    SamplingRate, min_period=durations, max_period=durations, on_change=st.booleans()
)
descriptions = st.builds(
    ReportDescription,
    r_id=ids,
    report_type=report_types,
    reading_type=reading_types,
    report_subject=_maybe(targets),
    report_data_source=_maybe(targets),
    item_base=_maybe(item_bases),
    market_context=_maybe(uris),
    sampling_rate=_maybe(sampling_rates),
)
reports = st.builds(
    Report,
    report_request_id=ids,
    report_specifier_id=ids,
    created_date_time=datetimes,
    report_id=_maybe(ids),
    report_name=_maybe(report_names),
    dtstart=_maybe(datetimes),
    duration=_maybe(durations),
    intervals=_tuples(report_intervals),
    descriptions=_tuples(descriptions, max_size=2),
)
report_requests = st.builds(
    ReportRequest,
    report_request_id=ids,
    report_specifier=st.builds(
        ReportSpecifier,
        report_specifier_id=ids,
        granularity=durations,
        report_back_duration=durations,
        specifier_payloads=_tuples(st.builds(
            SpecifierPayload, r_id=ids, reading_type=reading_types, item_base=_maybe(item_bases)
        ), min_size=1),
        report_interval=_maybe(st.builds(ReportingPeriod, dtstart=datetimes, duration=durations)),
    ),
)
cancel_reports = st.builds(
    CancelReport,
    request_id=ids,
    report_request_ids=_tuples(ids, min_size=1),
    report_to_follow=st.booleans(),
    ven_id=_maybe(ids),
)

PAYLOADS: dict[str, st.SearchStrategy[schemas.Message]] = {
    "RegisterReport": st.builds(
        RegisterReport, request_id=ids, reports=_tuples(reports, max_size=2),
        ven_id=_maybe(ids), report_request_id=_maybe(ids),
    ),
    "RegisteredReport": st.builds(
        RegisteredReport, response=ei_responses, report_requests=_tuples(report_requests),
        ven_id=_maybe(ids),
    ),
    "CreateReport": st.builds(
        CreateReport, request_id=ids, report_requests=_tuples(report_requests, min_size=1),
        ven_id=_maybe(ids),
    ),
    "CreatedReport": st.builds(
        CreatedReport, response=ei_responses, pending_reports=_tuples(ids), ven_id=_maybe(ids)
    ),
    "UpdateReport": st.builds(
        UpdateReport, request_id=ids, reports=_tuples(reports, max_size=2), ven_id=_maybe(ids)
    ),
    "UpdatedReport": st.builds(
        UpdatedReport, response=ei_responses, cancel_report=_maybe(cancel_reports),
        ven_id=_maybe(ids),
    ),
    "CancelReport": cancel_reports,
    "CanceledReport": st.builds(
        CanceledReport, response=ei_responses, pending_reports=_tuples(ids), ven_id=_maybe(ids)
    ),
}


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_round_trip_is_identity_and_xsd_valid(name: str) -> None:
    @settings(max_examples=25, deadline=None)
    @given(PAYLOADS[name])
    def check(message: schemas.Message) -> None:
        wire = schemas.encode(message)
        assert_xsd_valid(wire)
        assert schemas.decode(wire) == message

    check()


# ---------------------------------------------------------------- fixed examples and edges

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _telemetry(values: list[float]) -> UpdateReport:
    return UpdateReport(
        request_id="000123",
        ven_id="000042",
        reports=(Report(
            report_request_id="000007",
            report_specifier_id="x-FLEX_OFFER",
            report_name=ReportName.TELEMETRY_USAGE,
            created_date_time=NOW,
            dtstart=NOW,
            duration=timedelta(seconds=4 * len(values)),
            intervals=tuple(
                ReportInterval(
                    dtstart=NOW + timedelta(seconds=4 * i),
                    duration=timedelta(seconds=4),
                    payloads=(ReportPayload(r_id="psn1_abc", value=v),),
                )
                for i, v in enumerate(values)
            ),
        ),),
    )


def test_ids_that_look_like_numbers_stay_strings() -> None:
    decoded = schemas.decode(schemas.encode(_telemetry([1.5, -0.25])))
    assert isinstance(decoded, UpdateReport)
    assert (decoded.request_id, decoded.ven_id) == ("000123", "000042")
    report = decoded.reports[0]
    assert report.report_request_id == "000007"
    assert [i.payloads[0].value for i in report.intervals] == [1.5, -0.25]
    assert report.intervals[1].dtstart == NOW + timedelta(seconds=4)


def test_spec_tokens_decode_to_enum_members_and_extensions_to_strings() -> None:
    description = ReportDescription(
        r_id="r1", report_type="x-flexOffer", reading_type=ReadingType.X_NOT_APPLICABLE
    )
    report = Report(
        report_request_id="0", report_specifier_id="s", created_date_time=NOW,
        report_name="x-FLEX_OFFER", descriptions=(description,),
    )
    wire = schemas.encode(RegisterReport(request_id="1", reports=(report,)))
    decoded = schemas.decode(wire)
    assert isinstance(decoded, RegisterReport)
    got = decoded.reports[0]
    assert got.report_name == "x-FLEX_OFFER" and not isinstance(got.report_name, ReportName)
    assert got.descriptions[0].report_type == "x-flexOffer"
    assert got.descriptions[0].reading_type is ReadingType.X_NOT_APPLICABLE


def test_whitespace_around_tokens_is_collapsed_as_the_xsd_does() -> None:
    wire = schemas.encode(_telemetry([1.0])).replace(
        b">TELEMETRY_USAGE<", b">\n  TELEMETRY_USAGE  <"
    )
    assert_xsd_valid(wire)
    decoded = schemas.decode(wire)
    assert isinstance(decoded, UpdateReport)
    assert decoded.reports[0].report_name is ReportName.TELEMETRY_USAGE


@pytest.mark.parametrize("bad", ["FLEX_OFFER", "x-", "x- spaced", "telemetry_usage"])
def test_report_name_outside_the_spec_and_its_extensions_is_refused(bad: str) -> None:
    with pytest.raises(schemas.LocalProtocolError):
        Report(report_request_id="0", report_specifier_id="s", created_date_time=NOW,
               report_name=bad)


def test_illegal_parts_are_refused_when_built() -> None:
    with pytest.raises(schemas.LocalProtocolError):
        ReportPayload(r_id="r", value=1.0, confidence=101)
    with pytest.raises(schemas.LocalProtocolError):
        ReportPayload(r_id="r", value=1.0, confidence=True)  # would go out as "True"
    with pytest.raises(schemas.LocalProtocolError):
        ReportPayload(r_id="r", value=1.0, data_quality="Quality Great")
    with pytest.raises(schemas.LocalProtocolError):
        ReportInterval(payloads=())
    with pytest.raises(schemas.LocalProtocolError):
        CancelReport(request_id="1", report_request_ids=())
    with pytest.raises(schemas.LocalProtocolError):
        CreateReport(request_id="1", report_requests=())
    with pytest.raises(schemas.LocalProtocolError):
        ReportDescription(r_id="r", report_type="wattage", reading_type=ReadingType.NET)


def test_resource_status_payload_keeps_every_load_control_value() -> None:
    status = ResourceStatus(
        online=True,
        manual_override=False,
        load_control_state=LoadControlState(
            level_offset=LoadControlValue(current=-1.0, min=-3.0, max=0.0),
            set_point=LoadControlValue(current=21.5, normal=20.0),
        ),
    )
    message = UpdateReport(request_id="1", reports=(Report(
        report_request_id="rr", report_specifier_id="status", created_date_time=NOW,
        report_name=ReportName.TELEMETRY_STATUS,
        intervals=(ReportInterval(dtstart=NOW, payloads=(
            ReportPayload(r_id="dev1", value=status, data_quality=DataQuality.GOOD_NON_SPECIFIC),
        )),),
    ),))
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    decoded = schemas.decode(wire)
    assert isinstance(decoded, UpdateReport)
    payload = decoded.reports[0].intervals[0].payloads[0]
    assert payload.value == status
    assert payload.data_quality is DataQuality.GOOD_NON_SPECIFIC


def test_nested_cancel_report_has_no_schema_version_attribute() -> None:
    message = UpdatedReport(
        response=schemas.EiResponse(request_id="9"),
        cancel_report=CancelReport(request_id="c1", report_request_ids=("000001",)),
    )
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    assert wire.count(b"schemaVersion") == 1
    assert schemas.decode(wire) == message


def test_signal_payload_in_a_report_interval_is_invalid_data() -> None:
    wire = schemas.encode(_telemetry([1.0]))
    foreign = (
        b"<ei:signalPayload><ei:payloadFloat><ei:value>1.0</ei:value></ei:payloadFloat>"
        b"</ei:signalPayload></ei:interval>"
    )
    wire = wire.replace(b"</ei:interval>", foreign, 1)
    assert_xsd_valid(wire)
    with pytest.raises(schemas.InvalidData):
        schemas.decode(wire)


@settings(max_examples=25, deadline=None)
@given(st.lists(finite_floats, min_size=1, max_size=40), ids)
def test_plain_telemetry_blocks_keep_every_value_in_order(values: list[float], r_id: str) -> None:
    # The uniform shape telemetry uses is encoded and decoded by a block fast path.
    base = _telemetry(values)
    report = base.reports[0]
    intervals = tuple(
        ReportInterval(dtstart=i.dtstart, duration=i.duration,
                       payloads=(ReportPayload(r_id=r_id, value=i.payloads[0].value),))
        for i in report.intervals
    )
    message = UpdateReport(request_id="1", reports=(Report(
        report_request_id="0", report_specifier_id="s", created_date_time=NOW,
        intervals=intervals,
    ),))
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    decoded = schemas.decode(wire)
    assert decoded == message
    assert isinstance(decoded, UpdateReport)
    assert [i.payloads[0].value for i in decoded.reports[0].intervals] == values


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(finite_floats, min_size=1, max_size=6), min_size=1, max_size=8),
       st.booleans())
def test_plain_intervals_of_several_payloads_are_read_by_the_block_path_as_one_by_one(
        rows: list[list[float]], with_confidence: bool) -> None:
    # a device's batch: power and natural power at each instant, its forecasts at the last
    intervals = tuple(
        ReportInterval(dtstart=NOW + timedelta(seconds=4 * i), duration=timedelta(seconds=4),
                       payloads=tuple(ReportPayload(r_id=f"r{k}", value=v,
                                                    confidence=50 if with_confidence else None)
                                      for k, v in enumerate(row)))
        for i, row in enumerate(rows))
    message = UpdateReport(request_id="1", reports=(Report(
        report_request_id="0", report_specifier_id="s", created_date_time=NOW,
        intervals=intervals),))
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    block = etree.fromstring(wire).find(f".//{{{STRM}}}intervals")
    assert block is not None
    assert _decode_plain(block) == tuple(decode_interval(i) for i in block) == intervals
    assert schemas.decode(wire) == message


# Enough intervals for decode to try the block path first (PLAIN_BLOCK_AT_LEAST).
_BLOCK = [float(n) for n in range(1, PLAIN_BLOCK_AT_LEAST + 2)]


def test_one_irregular_interval_among_plain_ones_round_trips() -> None:
    plain = _telemetry(_BLOCK).reports[0]
    odd = ReportInterval(dtstart=NOW, payloads=(  # no duration, and a confidence
        ReportPayload(r_id="psn1_abc", value=9.0, confidence=80),
    ))
    message = UpdateReport(request_id="1", reports=(Report(
        report_request_id="0", report_specifier_id="s", created_date_time=NOW,
        intervals=(*plain.intervals[:2], odd, *plain.intervals[2:]),
    ),))
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    assert schemas.decode(wire) == message


def test_interval_without_duration_among_plain_ones_decodes_by_position() -> None:
    # Counting durations would misalign values if the decoder trusted a partial match.
    wire = schemas.encode(_telemetry(_BLOCK))
    without = wire.replace(b"<xcal:duration><xcal:duration>PT4S</xcal:duration></xcal:duration>",
                           b"", 1)
    assert_xsd_valid(without)
    decoded = schemas.decode(without)
    assert isinstance(decoded, UpdateReport)
    got = decoded.reports[0].intervals
    assert [i.duration for i in got] == [None] + [timedelta(seconds=4)] * (len(_BLOCK) - 1)
    assert [i.payloads[0].value for i in got] == _BLOCK


@pytest.mark.parametrize("number", [b"NaN", b"INF", b"-INF"])
def test_non_finite_report_values_are_invalid_data(number: bytes) -> None:
    wire = schemas.encode(_telemetry([1.0, 2.0])).replace(b">2.0<", b">" + number + b"<")
    assert_xsd_valid(wire)  # xs:float admits them; we cannot represent or resend them
    with pytest.raises(schemas.InvalidData):
        schemas.decode(wire)


def test_an_int_beyond_every_float_is_refused_when_sent() -> None:
    with pytest.raises(schemas.LocalProtocolError, match="too large for a float"):
        schemas.encode(_telemetry([1.0, 10**400]))
    accuracy = replace(_telemetry([1.0]), reports=(replace(
        _telemetry([1.0]).reports[0], intervals=(ReportInterval(payloads=(ReportPayload(
            r_id="r", value=1.0, accuracy=10**400),)),)),))
    with pytest.raises(schemas.LocalProtocolError, match="too large for a float"):
        schemas.encode(accuracy)


def test_a_bool_given_for_a_number_is_refused_when_sent() -> None:
    # True is an int to Python, and float(True) would go out as "1.0"
    with pytest.raises(schemas.LocalProtocolError, match="True is a bool, not a number"):
        schemas.encode(_telemetry([1.0, True]))
    accuracy = replace(_telemetry([1.0]), reports=(replace(
        _telemetry([1.0]).reports[0], intervals=(ReportInterval(payloads=(ReportPayload(
            r_id="r", value=1.0, accuracy=False),)),)),))
    with pytest.raises(schemas.LocalProtocolError, match="False is a bool, not a number"):
        schemas.encode(accuracy)


def test_huge_values_are_sent_without_exponent_and_read_back_equal() -> None:
    message = _telemetry([1e20, -2.5e-7])
    wire = schemas.encode(message)
    assert b"e+20" not in wire and b"e-07" not in wire
    assert_xsd_valid(wire)
    assert schemas.decode(wire) == message


@settings(max_examples=40, deadline=None)
@given(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_a_description_reads_back_with_any_of_its_optional_elements(
        subject: bool, source: bool, item: bool, market: bool, rate: bool) -> None:
    # the decoder reads a description by position, looking at a tag only where an optional
    # element may stand: every combination of them present or absent
    description = ReportDescription(
        r_id="r1", report_type=ReportType.READING, reading_type=ReadingType.DIRECT_READ,
        report_subject=schemas.Target(resource_ids=("meter-1",)) if subject else None,
        report_data_source=schemas.Target(ven_ids=("ven-1",), party_ids=("p",)) if source else None,
        item_base=ItemBase.of(ItemKind.POWER_REAL, scale=SiScale.KILO) if item else None,
        market_context="http://market.example/ctx" if market else None,
        sampling_rate=SamplingRate(min_period=timedelta(seconds=4),
                                   max_period=timedelta(minutes=1), on_change=True)
        if rate else None,
    )
    message = RegisterReport(request_id="1", reports=(Report(
        report_request_id="0", report_specifier_id="s", created_date_time=NOW,
        report_name=ReportName.METADATA_TELEMETRY_USAGE, descriptions=(description,)),))
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    assert schemas.decode(wire) == message


@given(report_intervals)
def test_the_decoders_builders_make_what_the_class_call_makes(interval: ReportInterval) -> None:
    """``_payload`` and ``_interval`` set the slots directly: the same values, the same checks."""
    built = _interval(tuple(_payload(p.r_id, p.confidence, p.accuracy, p.value, p.data_quality)
                            for p in interval.payloads),
                      interval.dtstart, interval.duration, interval.uid)
    assert built == interval
    assert repr(built) == repr(interval)


def test_the_decoders_builders_refuse_what_the_class_call_refuses() -> None:
    with pytest.raises(schemas.LocalProtocolError):
        ReportPayload(r_id="r", value=1.0, confidence=101)
    with pytest.raises(schemas.LocalProtocolError):
        _payload("r", 101, None, 1.0, None)
    with pytest.raises(schemas.LocalProtocolError):
        _payload("r", None, None, 1.0, "Quality Good")
    with pytest.raises(schemas.LocalProtocolError):
        _interval((), None, None, None)


@pytest.mark.parametrize("where", [0, len(_BLOCK) - 1], ids=["first interval", "last interval"])
def test_a_data_quality_in_a_long_block_is_kept_wherever_it_stands(where: int) -> None:
    """The block path's first look (the first interval's last payload) and its full look both
    send a block with an oadrDataQuality one interval at a time."""
    report = _telemetry(_BLOCK).reports[0]
    intervals = list(report.intervals)
    intervals[where] = replace(intervals[where], payloads=(replace(
        intervals[where].payloads[0], data_quality=DataQuality.GOOD_NON_SPECIFIC),))
    message = UpdateReport(request_id="1", reports=(replace(report, intervals=tuple(intervals)),))
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    assert schemas.decode(wire) == message
