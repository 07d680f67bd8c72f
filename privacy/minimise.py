"""Minimisation at the aggregator -> TSO boundary: the filter every outbound message passes,
the k-threshold the pool registration is built with, and the rule for per-device values.

:class:`OutboundFilter` works on the *encoded XML bytes*, so a message type added later cannot
slip past it. It admits only what the profile allows (an allow-list, not a deny-list:
docs/architecture.md#privacy-design).
What it refuses it refuses loudly: :class:`OutboundRefused` naming each finding, one ERROR log
line, nothing returned to send.

XML checks, in order: a hardened parse (no DTD, no entities, no network); the shape: nothing
outside the root element, no namespace the 2.0b XSD files do not define, and the document valid
against the 2.0b XSD (so no element name of its own carries text); every text node and
attribute value against its element's rule (:mod:`privacy.allowlist`: pseudonyms, enumerated
classes/buckets/zones, timestamps, UUID request ids, configured names, identifiers the TSO itself
sent); the deny-list scans on top, for EAN- and postcode-shaped text and every form of every vault
value (:mod:`privacy.detect`); every report interval about a pseudonym (a per-device row) must
carry its own ``xcal:dtstart`` inside an activation window and a share on the device grid
(:func:`device_share`), and an interval a pseudonym names in its ``xcal:uid`` (an erasure
notice's) only the marker value 1; in a registration, every combination of per-device attributes
(``groupName`` class x power x zone) must be shared by at least k devices, unless the whole
registration is a single fully generalised group. ds:Signature content is exempt from the
allow-list and the shape scan, not from the vault scan.

:func:`generalise` is the k-threshold the aggregator applies when it builds a registration, so
that the filter's k check is a second line, not the mechanism.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final, TypeVar

from lxml import etree

from schemas import SchemaSet

from .allowlist import ECHO_TAGS, GENERALISED, Echoes, OutboundPolicy, Rules
from .detect import Finding, LeakDetector, mask, shape_findings
from .errors import OutboundRefused
from .pseudonym import is_pseudonym
from .vault import IdentityVault

__all__ = [
    "DEVICE_SHARE_STEP",
    "ActivationWindow",
    "OutboundFilter",
    "OutboundPolicy",
    "device_share",
    "generalise",
]

_EI: Final = "http://docs.oasis-open.org/ns/energyinterop/201110"
_XCAL: Final = "urn:ietf:params:xml:ns:icalendar-2.0"
_DS: Final = "http://www.w3.org/2000/09/xmldsig#"
_OADR: Final = "http://openadr.org/oadr-2.0b/2012/07"
_XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
_LOG: Final = logging.getLogger("crowdflex.privacy.outbound")

K = TypeVar("K")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationWindow:
    """Per-device data may be sent for instants in ``[start, end]`` (margins already applied)."""

    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at <= self.end


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


def _schema_namespaces(schema: SchemaSet) -> frozenset[str]:
    """The target namespaces of the XSD files the schema set is built from."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return frozenset(etree.parse(str(path), parser).getroot().get("targetNamespace") or ""
                     for path in schema.directory.glob("*.xsd")) - {""}


def _on_grid(value: Decimal, step: Decimal) -> bool:
    return value.is_finite() and value % step == 0


class OutboundFilter:
    """The one gate for aggregator -> TSO messages: ``admit_xml(data)`` returns data or raises."""

    __slots__ = ("_detector", "_generation", "_namespaces", "_rules", "_schema", "_vault",
                 "echoes", "policy")

    def __init__(self, policy: OutboundPolicy, *, vault: IdentityVault | None = None) -> None:
        self.policy = policy
        self._vault = vault
        self._detector = LeakDetector(())
        self._generation = -1
        #: identifiers the TSO sent, which the aggregator may send back (:meth:`learn`)
        self.echoes = Echoes()
        self._rules = Rules(policy, self.echoes)
        # The shape: the rules judge text, so element names, namespace URIs and nodes outside
        # the root, which carry text of their own, are held to the 2.0b XSD set.
        self._schema = SchemaSet()
        self._namespaces = _schema_namespaces(self._schema) | {_XSI}

    def learn(self, data: bytes) -> None:
        """Remember the identifiers (venID, eventID, requestIDs...) of a message from the TSO."""
        try:
            root = _parse(data)
        except OutboundRefused:
            return
        self.echoes.learn((e.text or "").strip() for e in root.iter()
                          if isinstance(e.tag, str) and _local(e.tag) in ECHO_TAGS and e.text)

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
        findings: list[Finding | str] = [*self._shape_findings(root)]
        for where, value in texts.plain:
            findings += self._rules.findings(where, value)
            findings += shape_findings(value, where)
            findings += detector.scan(value, where)
        for where, value in texts.signature:
            findings += detector.scan(value, where)
        findings += self._interval_findings(root, windows)
        findings += self._k_findings(root)
        if findings:
            raise self._refuse(findings)
        return data

    def _shape_findings(self, root: etree._Element) -> list[str]:
        """Nothing outside the root (a comment or processing instruction there), no namespace
        the XSD set does not define (its URI is free text), and a document the 2.0b XSD takes
        (an element name is free text too)."""
        findings = ["a comment or processing instruction outside the root element"
                    for _ in (*root.itersiblings(preceding=True), *root.itersiblings())]
        declared = {uri for _, (_, uri) in etree.iterwalk(root, events=("start-ns",))}
        findings += [f"a namespace the OpenADR 2.0b schemas do not define: {mask(uri)}"
                     for uri in sorted(declared - self._namespaces)]
        if not self._schema.is_valid(root):
            findings.append("the document is not valid against the OpenADR 2.0b XSD")
        return findings

    def _interval_findings(
        self, root: etree._Element, windows: Sequence[ActivationWindow]
    ) -> list[str]:
        findings: list[str] = []
        for interval in root.iter(f"{{{_EI}}}interval"):
            rids = [(r.text or "").strip() for r in interval.iter(f"{{{_EI}}}rID")]
            if not any(is_pseudonym(r) for r in rids):
                findings += self._named_interval_findings(interval)
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

    @staticmethod
    def _named_interval_findings(interval: etree._Element) -> list[str]:
        """An interval named by a pseudonym in its xcal:uid (an erasure notice's, one per
        pseudonym) carries the marker value 1 only: a value there would be a device's
        measurement that escaped the window and grid rules above."""
        uid = interval.find(f"{{{_XCAL}}}uid/{{{_XCAL}}}text")
        if uid is None or not is_pseudonym((uid.text or "").strip()):
            return []
        if all(_is_marker(v.text) for v in interval.iter(f"{{{_EI}}}value")):
            return []
        return ["an interval named by a pseudonym carries a value other than the marker 1"]

    def _value_findings(self, text: str | None) -> list[str]:
        try:
            value = Decimal((text or "").strip())
        except InvalidOperation:
            return [f"per-device value {text!r} is not a number"]
        step = self.policy.device_step
        if not _on_grid(value, step) or not -1 <= value <= 1:
            return [f"per-device value {value} is not a share in [-1, 1] on the {step} grid"]
        return []

    def _k_findings(self, root: etree._Element) -> list[str]:
        """Every attribute combination of a registration's devices is shared by k or more."""
        findings: list[str] = []
        for report in root.iter(f"{{{_OADR}}}oadrReport"):
            combos: Counter[tuple[str, ...]] = Counter()
            for description in report.iter(f"{{{_OADR}}}oadrReportDescription"):
                rid = (description.findtext(f"{{{_EI}}}rID") or "").strip()
                if is_pseudonym(rid):
                    combos[tuple(sorted((g.text or "").strip() for g in description.iter(
                        f"{{{_EI}}}groupName")))] += 1
            if len(combos) == 1 and all(n.endswith(":" + GENERALISED) for n in next(iter(combos))):
                continue  # the whole registration is one fully generalised group
            findings += [f"attribute combination {'/'.join(c)} is shared by {n} < k = "
                         f"{self.policy.k} devices" for c, n in combos.items() if n < self.policy.k]
        return findings


def _is_marker(text: str | None) -> bool:
    try:
        return Decimal((text or "").strip()) == 1
    except InvalidOperation:
        return False


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def generalise(attributes: Mapping[K, Sequence[str]], *, k: int,
               order: Sequence[int]) -> dict[K, tuple[str, ...]]:
    """k-threshold by local generalisation: every combination of attributes in the result is
    shared by at least ``k`` keys, or the result is one group of fully generalised values.

    ``attributes`` maps each device to its attribute values (e.g. class, power bucket, zone);
    ``order`` names the attribute positions from the first to give up to the last. Level by
    level, the devices of every combination under ``k`` get that attribute replaced by
    ``OTHER`` (so small groups merge with each other, never with a group already large
    enough). If a fully generalised group is still under ``k`` at the end, the smallest
    remaining groups are generalised into it until it reaches ``k``; a table under ``k`` in
    total ends as one ``OTHER`` group: that is the pool, not a breakdown of it.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    current = {key: tuple(values) for key, values in attributes.items()}
    if not current:
        return current
    width = len(next(iter(current.values())))
    if sorted(order) != list(range(width)):
        raise ValueError(f"order must name each of the {width} attribute positions once")
    for position in order:
        counts = Counter(current.values())
        for key, combo in current.items():
            if counts[combo] < k:
                current[key] = (*combo[:position], GENERALISED, *combo[position + 1:])
    other = (GENERALISED,) * width
    counts = Counter(current.values())
    while 0 < counts[other] < k and len(counts) > 1:
        smallest = min((c for c in counts if c != other), key=lambda c: (counts[c], c))
        current = {key: other if combo == smallest else combo for key, combo in current.items()}
        counts = Counter(current.values())
    return current


#: the grid of per-device values sent to the TSO (shares of each device's rated power)
DEVICE_SHARE_STEP: Final = Decimal("0.01")


def device_share(kw: Decimal, rated_kw: Decimal, *, step: Decimal = DEVICE_SHARE_STEP) -> Decimal:
    """A per-device value as the TSO receives it: the share of the device's rated power,
    half-up on ``step``, clipped to [-1, 1].

    Why (for the DPIA): the registration says a device's rated power only as a bucket
    ("7-11kW"), so that devices of one bucket cannot be told apart. Metering in kW undid that:
    the highest value a device reaches while running flat out *is* its rated power (a charger
    showing 11.0 kW in "7-11kW" is an 11 kW charger; one showing 7.4 is a 7.4 kW one), which
    splits a bucket into sub-groups smaller than k and links a device across months by its
    rating. A share of the device's own rated power (known to the aggregator only, in the
    vault) says when the device ran, how hard relative to itself and how far it came down on
    activation, which is what per-device validation needs; it does not say the rating: a device
    at full power reads 1.0 whatever its rating. The 0.01 grid is finer than the 0.1 kW the kW
    rows had for devices under 10 kW and coarser above. What stays: the pool row is in MW, so a
    device switched alone could be sized from the pool's step; dispatch spreads an activation
    over many devices, and the residual risk belongs in the DPIA's risk table.
    """
    if rated_kw <= 0:
        raise ValueError("rated power must be positive")
    share = (kw / rated_kw).quantize(step, rounding=ROUND_HALF_UP)
    return max(Decimal(-1), min(Decimal(1), share))
