"""OpenADR 2.0b report payloads (EiReport service) and their parts, as typed frozen dataclasses.

OpenADR 2.0b profile 8.3 (EiReport): a party registers what it can report (oadrRegisterReport
with METADATA reports whose descriptions list data points by rID), the other side asks for reports
(oadrCreateReport, or oadrRegisteredReport carrying oadrReportRequest), data flows in
oadrUpdateReport, and oadrCancelReport stops a periodic report. Element order and optionality
follow oadr_20b.xsd, oadr_ei_20b.xsd and oadr_strm_20b.xsd; the wire form lives in
``_reports_xml`` (payloads), ``_report_parts_xml`` (reports, requests) and ``_report_data_xml``
(intervals of values, the telemetry hot path).

Invariants:
- IDs (requestID, reportRequestID, reportSpecifierID, rID, eiReportID, venID) are ``str`` exactly as
  received: ``'000123'`` stays ``'000123'``.
- Enumerated tokens that the XSD extends with ``x-`` names (reportName, reportType, readingType,
  oadrDataQuality) are the enum member when the value is a spec value, else the ``x-...`` string.
  Building a part with any other string is a :class:`LocalProtocolError`.
- Lists the XSD requires to be non-empty (report request IDs of a cancel, report requests of a
  create, specifier payloads, interval payloads) are refused empty when built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ._base import Message
from ._errors import LocalProtocolError
from ._wire import check_unsigned
from .parts import EiResponse, Target
from .units import ItemBase

__all__ = [
    "CancelReport",
    "CanceledReport",
    "CreateReport",
    "CreatedReport",
    "DataQuality",
    "LoadControlState",
    "LoadControlValue",
    "ReadingType",
    "RegisterReport",
    "RegisteredReport",
    "Report",
    "ReportDescription",
    "ReportInterval",
    "ReportName",
    "ReportPayload",
    "ReportRequest",
    "ReportSpecifier",
    "ReportType",
    "ReportingPeriod",
    "ResourceStatus",
    "SamplingRate",
    "SpecifierPayload",
    "UpdateReport",
    "UpdatedReport",
]


class ReportName(StrEnum):
    """ei:reportNameEnumeratedType; extensions such as ``x-FLEX_OFFER`` stay plain strings."""

    METADATA_HISTORY_USAGE = "METADATA_HISTORY_USAGE"
    HISTORY_USAGE = "HISTORY_USAGE"
    METADATA_HISTORY_GREENBUTTON = "METADATA_HISTORY_GREENBUTTON"
    HISTORY_GREENBUTTON = "HISTORY_GREENBUTTON"
    METADATA_TELEMETRY_USAGE = "METADATA_TELEMETRY_USAGE"
    TELEMETRY_USAGE = "TELEMETRY_USAGE"
    METADATA_TELEMETRY_STATUS = "METADATA_TELEMETRY_STATUS"
    TELEMETRY_STATUS = "TELEMETRY_STATUS"


class ReportType(StrEnum):
    """ei:ReportEnumeratedType (oadr_ei_20b.xsd); ``x-resourceStatus`` is listed by the spec."""

    READING = "reading"
    USAGE = "usage"
    DEMAND = "demand"
    SET_POINT = "setPoint"
    DELTA_USAGE = "deltaUsage"
    DELTA_SET_POINT = "deltaSetPoint"
    DELTA_DEMAND = "deltaDemand"
    BASELINE = "baseline"
    DEVIATION = "deviation"
    AVG_USAGE = "avgUsage"
    AVG_DEMAND = "avgDemand"
    OPERATING_STATE = "operatingState"
    UP_REGULATION_CAPACITY_AVAILABLE = "upRegulationCapacityAvailable"
    DOWN_REGULATION_CAPACITY_AVAILABLE = "downRegulationCapacityAvailable"
    REGULATION_SETPOINT = "regulationSetpoint"
    STORED_ENERGY = "storedEnergy"
    TARGET_ENERGY_STORAGE = "targetEnergyStorage"
    AVAILABLE_ENERGY_STORAGE = "availableEnergyStorage"
    PRICE = "price"
    LEVEL = "level"
    POWER_FACTOR = "powerFactor"
    PERCENT_USAGE = "percentUsage"
    PERCENT_DEMAND = "percentDemand"
    X_RESOURCE_STATUS = "x-resourceStatus"


class ReadingType(StrEnum):
    """ei:ReadingTypeEnumeratedType (oadr_ei_20b.xsd)."""

    DIRECT_READ = "Direct Read"
    NET = "Net"
    ALLOCATED = "Allocated"
    ESTIMATED = "Estimated"
    SUMMED = "Summed"
    DERIVED = "Derived"
    MEAN = "Mean"
    PEAK = "Peak"
    HYBRID = "Hybrid"
    CONTRACT = "Contract"
    PROJECTED = "Projected"
    X_RMS = "x-RMS"
    X_NOT_APPLICABLE = "x-notApplicable"


class DataQuality(StrEnum):
    """oadr:oadrDataQualityType (oadr_20b.xsd): OPC-style quality of one reported value."""

    NO_QUALITY_NO_VALUE = "No Quality - No Value"
    NO_NEW_VALUE_PREVIOUS_VALUE_USED = "No New Value - Previous Value Used"
    BAD_NON_SPECIFIC = "Quality Bad - Non Specific"
    BAD_CONFIGURATION_ERROR = "Quality Bad - Configuration Error"
    BAD_NOT_CONNECTED = "Quality Bad - Not Connected"
    BAD_DEVICE_FAILURE = "Quality Bad - Device Failure"
    BAD_SENSOR_FAILURE = "Quality Bad - Sensor Failure"
    BAD_LAST_KNOWN_VALUE = "Quality Bad - Last Known Value"
    BAD_COMM_FAILURE = "Quality Bad - Comm Failure"
    BAD_OUT_OF_SERVICE = "Quality Bad - Out of Service"
    UNCERTAIN_NON_SPECIFIC = "Quality Uncertain - Non Specific"
    UNCERTAIN_LAST_USABLE_VALUE = "Quality Uncertain - Last Usable Value"
    UNCERTAIN_SENSOR_NOT_ACCURATE = "Quality Uncertain - Sensor Not Accurate"
    UNCERTAIN_EU_UNITS_EXCEEDED = "Quality Uncertain - EU Units Exceeded"
    UNCERTAIN_SUB_NORMAL = "Quality Uncertain - Sub Normal"
    GOOD_NON_SPECIFIC = "Quality Good - Non Specific"
    GOOD_LOCAL_OVERRIDE = "Quality Good - Local Override"
    LIMIT_FIELD_NOT = "Quality Limit - Field/Not"
    LIMIT_FIELD_LOW = "Quality Limit - Field/Low"
    LIMIT_FIELD_HIGH = "Quality Limit - Field/High"
    LIMIT_FIELD_CONSTANT = "Quality Limit - Field/Constant"


def _check_token(value: str, enum: type[StrEnum], what: str) -> None:
    """The XSD unions each enum with ei:EiExtensionTokenType, whose pattern is ``x-\\S.*``."""
    if isinstance(value, enum) or value in enum._value2member_map_:
        return
    if len(value) < 3 or not value.startswith("x-") or value[2].isspace() or value != value.strip():
        raise LocalProtocolError(f"{what} {value!r} is neither a spec value nor an x- extension")


# ---------------------------------------------------------------- report data (oadrReportPayload)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadControlValue:
    """oadrLoadControlStateTypeType: one controlled quantity (oadrMin/Max/Current/Normal)."""

    current: float
    min: float | None = None
    max: float | None = None
    normal: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadControlState:
    """oadrLoadControlState: the ways a load's control can be expressed; each is optional."""

    capacity: LoadControlValue | None = None
    level_offset: LoadControlValue | None = None
    percent_offset: LoadControlValue | None = None
    set_point: LoadControlValue | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceStatus:
    """oadrPayloadResourceStatus: the payload of TELEMETRY_STATUS data points."""

    online: bool
    manual_override: bool
    load_control_state: LoadControlState | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportPayload:
    """oadrReportPayload: one data point's value in an interval (payloadFloat or a status)."""

    r_id: str
    value: float | ResourceStatus
    confidence: int | None = None  # percent, 0..100 (ei:ConfidenceType)
    accuracy: float | None = None  # in the units of the value
    data_quality: DataQuality | str | None = None

    def __post_init__(self) -> None:
        if self.confidence is not None:  # a call saved on every telemetry payload without one
            check_unsigned("confidence", self.confidence, 100)
        if self.data_quality is not None:
            _check_token(self.data_quality, DataQuality, "oadrDataQuality")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportInterval:
    """ei:interval inside strm:intervals of a report: when, and one value per data point."""

    payloads: tuple[ReportPayload, ...]
    dtstart: datetime | None = None
    duration: timedelta | None = None
    uid: str | None = None

    def __post_init__(self) -> None:
        if not self.payloads:
            raise LocalProtocolError("a report interval needs at least one oadrReportPayload")


# ---------------------------------------------------------------- metadata (oadrReportDescription)


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingRate:
    """oadrSamplingRate: how often a telemetry data point can be sampled."""

    min_period: timedelta
    max_period: timedelta
    on_change: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportDescription:
    """oadrReportDescription: one data point a METADATA report offers."""

    r_id: str
    report_type: ReportType | str
    reading_type: ReadingType | str
    report_subject: Target | None = None
    report_data_source: Target | None = None
    item_base: ItemBase | None = None
    market_context: str | None = None
    sampling_rate: SamplingRate | None = None

    def __post_init__(self) -> None:
        _check_token(self.report_type, ReportType, "reportType")
        _check_token(self.reading_type, ReadingType, "readingType")


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """oadrReport: metadata (``descriptions``) or data (``intervals``) of one report instance."""

    report_request_id: str
    report_specifier_id: str
    created_date_time: datetime
    report_id: str | None = None  # ei:eiReportID
    report_name: ReportName | str | None = None
    dtstart: datetime | None = None
    duration: timedelta | None = None
    intervals: tuple[ReportInterval, ...] = ()
    descriptions: tuple[ReportDescription, ...] = ()

    def __post_init__(self) -> None:
        if self.report_name is not None:
            _check_token(self.report_name, ReportName, "reportName")


# ---------------------------------------------------------------- requests (oadrReportRequest)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpecifierPayload:
    """ei:specifierPayload: one requested data point, by the rID its METADATA report gave it."""

    r_id: str
    reading_type: ReadingType | str
    item_base: ItemBase | None = None

    def __post_init__(self) -> None:
        _check_token(self.reading_type, ReadingType, "readingType")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportingPeriod:
    """ei:reportInterval (xcal:properties dtstart + duration): the overall period of reporting."""

    dtstart: datetime
    duration: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSpecifier:
    """ei:reportSpecifier: which data points, sampled how finely, sent back how often."""

    report_specifier_id: str
    granularity: timedelta
    report_back_duration: timedelta
    specifier_payloads: tuple[SpecifierPayload, ...]
    report_interval: ReportingPeriod | None = None

    def __post_init__(self) -> None:
        if not self.specifier_payloads:
            raise LocalProtocolError("a report specifier needs at least one specifierPayload")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRequest:
    """oadrReportRequest."""

    report_request_id: str
    report_specifier: ReportSpecifier


# ---------------------------------------------------------------- the eight payloads


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterReport(Message):
    """oadrRegisterReport: offer METADATA reports (``report_request_id`` answers a re-request)."""

    request_id: str
    reports: tuple[Report, ...] = ()
    ven_id: str | None = None
    report_request_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisteredReport(Message):
    """oadrRegisteredReport: acknowledge a registration, optionally requesting reports at once."""

    response: EiResponse
    report_requests: tuple[ReportRequest, ...] = ()
    ven_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateReport(Message):
    """oadrCreateReport: ask the other party for one or more reports."""

    request_id: str
    report_requests: tuple[ReportRequest, ...]
    ven_id: str | None = None

    def __post_init__(self) -> None:
        if not self.report_requests:
            raise LocalProtocolError("oadrCreateReport needs at least one oadrReportRequest")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedReport(Message):
    """oadrCreatedReport: acknowledge a create; ``pending_reports`` are reportRequestIDs."""

    response: EiResponse
    pending_reports: tuple[str, ...] = ()
    ven_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateReport(Message):
    """oadrUpdateReport: deliver report data (or, rarely, metadata)."""

    request_id: str
    reports: tuple[Report, ...] = ()
    ven_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReport(Message):
    """oadrCancelReport: stop periodic reports; ``report_to_follow`` asks for one final report."""

    request_id: str
    report_request_ids: tuple[str, ...]
    report_to_follow: bool = False
    ven_id: str | None = None

    def __post_init__(self) -> None:
        if not self.report_request_ids:
            raise LocalProtocolError("oadrCancelReport needs at least one reportRequestID")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatedReport(Message):
    """oadrUpdatedReport: acknowledge data, optionally cancelling reports in the same breath."""

    response: EiResponse
    cancel_report: CancelReport | None = None
    ven_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CanceledReport(Message):
    """oadrCanceledReport: acknowledge a cancel; ``pending_reports`` are reportRequestIDs."""

    response: EiResponse
    pending_reports: tuple[str, ...] = ()
    ven_id: str | None = None
