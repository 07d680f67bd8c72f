"""Minimisation at the aggregator -> TSO boundary: one filter every outbound message passes.

:class:`OutboundFilter` works on the *encoded XML bytes* (so a message type added later cannot
slip past it) and on typed records (for code that builds per-device rows). It admits only what
docs/architecture.md#privacy-design allows the TSO to see per device: pseudonyms, device class,
power bucket, zone, pool id, and measurements at 0.1 kW resolution inside activation windows. What
it refuses it
refuses loudly: :class:`OutboundRefused` naming each finding, one ERROR log line, nothing returned
to send.

XML checks, in order: a hardened parse (no DTD, no entities, no network); every text node and
attribute value is scanned for EAN- and postcode-shaped text and for every form of every vault value
(:mod:`privacy.detect`); every ``ei:rID`` and ``ei:resourceID`` must be a pseudonym or a configured
pool/aggregate id; every report interval about a pseudonym (a per-device row, in kW) must carry its
own ``xcal:dtstart`` inside an activation window and a value on the 0.1 kW grid. ds:Signature
content (base64 of keys and digests) is skipped for the shape scan only.

:func:`merge_small_groups` is the k-threshold: a pure function over ``group -> values`` tables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final, TypeVar

from lxml import etree

from .detect import Finding, LeakDetector, mask, shape_findings
from .errors import OutboundRefused
from .pseudonym import is_pseudonym
from .vault import IdentityVault

__all__ = [
    "ActivationWindow",
    "DeviceMeasurement",
    "DeviceRecord",
    "OutboundFilter",
    "OutboundPolicy",
    "merge_small_groups",
]

_EI: Final = "http://docs.oasis-open.org/ns/energyinterop/201110"
_XCAL: Final = "urn:ietf:params:xml:ns:icalendar-2.0"
_DS: Final = "http://www.w3.org/2000/09/xmldsig#"
_OADR: Final = "http://openadr.org/oadr-2.0b/2012/07"
_ID_TAGS: Final = frozenset({f"{{{_EI}}}rID", f"{{{_EI}}}resourceID"})
_LOG: Final = logging.getLogger("crowdflex.privacy.outbound")

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundPolicy:
    """What may cross to the TSO; every value here comes from configuration."""

    pool_ids: frozenset[str]
    device_classes: frozenset[str] = frozenset({"EV_CHARGER", "HEAT_PUMP", "HOME_BATTERY"})
    power_buckets: frozenset[str] = frozenset({"0-3.7kW", "3.7-7.4kW", "7.4-11kW", "11-22kW"})
    zones: frozenset[str] = frozenset({"NL"})
    #: non-device report/resource ids allowed in rID positions (pool rows, baselines, offers)
    aggregate_ids: frozenset[str] = frozenset()
    resolution_kw: Decimal = Decimal("0.1")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationWindow:
    """Per-device data may be sent for instants in ``[start, end]`` (margins already applied)."""

    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at <= self.end


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRecord:
    """One device in the pool registration the TSO receives."""

    pseudonym: str
    device_class: str
    power_bucket: str
    zone: str
    pool_id: str
    gcp_pseudonym: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceMeasurement:
    pseudonym: str
    at: datetime
    kw: Decimal


@dataclass(slots=True)
class _Texts:
    """Every text value of a document with a readable location, split by signature membership."""

    plain: list[tuple[str, str]] = field(default_factory=list)
    signature: list[tuple[str, str]] = field(default_factory=list)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else "?"


def _collect(root: etree._Element) -> _Texts:
    texts = _Texts()
    signature_nodes = {id(e) for s in root.iter(f"{{{_DS}}}Signature") for e in s.iter()}
    for element in root.iter():
        target = texts.signature if id(element) in signature_nodes else texts.plain
        where = _local(element.tag)
        target += [(where, t) for t in (element.text, element.tail) if t and t.strip()]
        # lxml types attribute values as str | bytes; on a parsed tree they are always str
        target += [(f"{where}/@{_local(n)}", str(v)) for n, v in element.attrib.items()]
    return texts


def _parse(data: bytes) -> etree._Element:
    if b"<!" in data.replace(b"<!--", b"").replace(b"<![CDATA[", b""):
        raise OutboundRefused(("document carries a DOCTYPE or markup declaration",))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise OutboundRefused((f"not well-formed XML: {exc}",)) from None


def _on_grid(value: Decimal, resolution: Decimal) -> bool:
    return value.is_finite() and value % resolution == 0


class OutboundFilter:
    """The one gate for aggregator -> TSO messages: ``admit_xml(data)`` returns data or raises."""

    __slots__ = ("_detector", "_generation", "_vault", "policy")

    def __init__(self, policy: OutboundPolicy, *, vault: IdentityVault | None = None) -> None:
        self.policy = policy
        self._vault = vault
        self._detector = LeakDetector(())
        self._generation = -1

    def current_detector(self) -> LeakDetector:
        """The detector over the vault's values as they are now (the run's audit reuses it)."""
        # Rebuilt when the vault changed since the last message (onboarding, erasure).
        if self._vault is not None and self._vault.generation != self._generation:
            self._detector = LeakDetector(self._vault.identity_values(
                requested_by="outbound-filter", reason="look for vault values in TSO-bound data"))
            self._generation = self._vault.generation
        return self._detector

    def _refuse(self, findings: Sequence[Finding | str]) -> OutboundRefused:
        lines = tuple(dict.fromkeys(str(f) for f in findings))
        _LOG.error("outbound message refused, nothing sent: %s", "; ".join(lines))
        return OutboundRefused(lines)

    def admit_xml(self, data: bytes, *, windows: Sequence[ActivationWindow] = ()) -> bytes:
        """Return ``data`` unchanged when it may go to the TSO, else raise OutboundRefused."""
        try:
            root = _parse(data)
        except OutboundRefused as exc:
            raise self._refuse(exc.findings) from None
        texts = _collect(root)
        detector = self.current_detector()
        findings: list[Finding | str] = []
        for where, value in texts.plain:
            findings += shape_findings(value, where)
            findings += detector.scan(value, where)
        for where, value in texts.signature:
            findings += detector.scan(value, where)
        findings += self._id_findings(root)
        findings += self._interval_findings(root, windows)
        if findings:
            raise self._refuse(findings)
        return data

    def _id_allowed(self, value: str) -> bool:
        allowed = self.policy.pool_ids | self.policy.aggregate_ids
        return is_pseudonym(value) or value in allowed

    def _id_findings(self, root: etree._Element) -> list[str]:
        return [
            f"{_local(e.tag)}: {mask(e.text or '')!s} is neither a pseudonym nor a configured id"
            for e in root.iter(*_ID_TAGS)
            if not self._id_allowed((e.text or "").strip())
        ]

    def _interval_findings(
        self, root: etree._Element, windows: Sequence[ActivationWindow]
    ) -> list[str]:
        findings: list[str] = []
        for interval in root.iter(f"{{{_EI}}}interval"):
            rids = [(r.text or "").strip() for r in interval.iter(f"{{{_EI}}}rID")]
            if not any(is_pseudonym(r) for r in rids):
                continue
            start = interval.find(f"{{{_XCAL}}}dtstart/{{{_XCAL}}}date-time")
            at = _parse_time(start.text if start is not None else None)
            if at is None:
                findings.append("per-device interval without a readable xcal:dtstart")
            elif not any(at in w for w in windows):
                findings.append(f"per-device data at {at.isoformat()} outside activation windows")
            for value in interval.iter(f"{{{_EI}}}value"):
                findings += self._value_findings(value.text)
        return findings

    def _value_findings(self, text: str | None) -> list[str]:
        try:
            value = Decimal((text or "").strip())
        except InvalidOperation:
            return [f"per-device value {text!r} is not a number"]
        if not _on_grid(value, self.policy.resolution_kw):
            return [f"per-device value {value} kW is finer than {self.policy.resolution_kw} kW"]
        return []

    def admit_records(
        self,
        records: Iterable[DeviceRecord | DeviceMeasurement],
        *,
        windows: Sequence[ActivationWindow] = (),
    ) -> tuple[DeviceRecord | DeviceMeasurement, ...]:
        """Check typed per-device rows against the policy; returns them or raises."""
        kept = tuple(records)
        findings: list[str] = []
        for n, record in enumerate(kept):
            findings += [f"record {n}: {p}" for p in self._record_problems(record, windows)]
        if findings:
            raise self._refuse(findings)
        return kept

    def _record_problems(
        self, record: DeviceRecord | DeviceMeasurement, windows: Sequence[ActivationWindow]
    ) -> list[str]:
        problems = [] if is_pseudonym(record.pseudonym) else ["pseudonym is not psn1_..."]
        match record:
            case DeviceRecord():
                p = self.policy
                checks = (
                    (record.device_class in p.device_classes, "unknown device class"),
                    (record.power_bucket in p.power_buckets, "unknown power bucket"),
                    (record.zone in p.zones, "unknown zone"),
                    (record.pool_id in p.pool_ids, "unknown pool id"),
                    (is_pseudonym(record.gcp_pseudonym), "GCP is not a pseudonym"),
                )
                problems += [message for ok, message in checks if not ok]
            case DeviceMeasurement():
                if not any(record.at in w for w in windows):
                    problems.append(f"measurement at {record.at.isoformat()} outside windows")
                if not _on_grid(record.kw, self.policy.resolution_kw):
                    problems.append(f"{record.kw} kW is finer than {self.policy.resolution_kw} kW")
        return problems


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def merge_small_groups(
    table: Mapping[str, Sequence[T]], *, k: int = 10, other: str = "OTHER"
) -> dict[str, tuple[T, ...]]:
    """k-threshold: a group of fewer than ``k`` devices (one value per device) goes to ``other``.

    If ``other`` itself would stay under ``k``, the smallest remaining groups join it until it
    reaches ``k`` (else a lone small group would still be published under a new name). A table whose
    total is under ``k`` becomes one ``other`` group: that is the total, not a breakdown.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    kept = {g: tuple(v) for g, v in table.items() if g != other and len(v) >= k}
    merged = [x for g, v in table.items() if g not in kept for x in v]
    while merged and len(merged) < k and kept:
        smallest = min(kept, key=lambda g: (len(kept[g]), g))
        merged += kept.pop(smallest)
    result = dict(sorted(kept.items()))
    if merged:
        result[other] = tuple(merged)
    return result
