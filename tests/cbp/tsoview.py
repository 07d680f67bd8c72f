"""What the TSO holds after a rig run, read back from the captured aggregator -> TSO requests.

The linkage, probe and withdrawal tests play the TSO: they see nothing but the bytes that crossed
the link (the TSO's capture folder), parsed here into the pool registrations (device pseudonyms in
wire order with their groupNames, the GCP pseudonyms) and the per-device rows (pseudonym, instant,
value, in wire order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lxml import etree

from privacy import is_pseudonym

_EI = "http://docs.oasis-open.org/ns/energyinterop/201110"
_OADR = "http://openadr.org/oadr-2.0b/2012/07"
_XCAL = "urn:ietf:params:xml:ns:icalendar-2.0"


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    devices: tuple[tuple[str, tuple[str, ...]], ...]  # (pseudonym, groupNames) in wire order
    gcps: tuple[str, ...]  # the partyIDs of the pool row
    device_parties: int  # partyIDs on device descriptions (none: no household links)

    @property
    def pseudonyms(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.devices)


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    at: datetime
    pseudonym: str
    value: float


def _requests(captures: Path) -> list[etree._Element]:
    return [etree.parse(str(f)).getroot() for f in sorted(captures.glob("*-request.xml"))]


def registrations(captures: Path) -> list[Registration]:
    """Every pool registration the TSO received, in order."""
    found = []
    for root in _requests(captures):
        for report in root.iter(f"{{{_OADR}}}oadrReport"):
            if not (report.findtext(f"{{{_EI}}}reportSpecifierID") or "").endswith(":telemetry"):
                continue
            descriptions = list(report.iter(f"{{{_OADR}}}oadrReportDescription"))
            if not descriptions:
                continue
            devices, gcps, parties = [], (), 0
            for d in descriptions:
                rid = d.findtext(f"{{{_EI}}}rID") or ""
                if is_pseudonym(rid):
                    names = tuple(g.text or "" for g in d.iter(f"{{{_EI}}}groupName"))
                    devices.append((rid, names))
                    parties += len(list(d.iter(f"{{{_EI}}}partyID")))
                else:
                    gcps = tuple(p.text or "" for p in d.iter(f"{{{_EI}}}partyID"))
            found.append(Registration(devices=tuple(devices), gcps=gcps, device_parties=parties))
    return found


def device_rows(captures: Path) -> list[Row]:
    """Every per-device row the TSO received, in wire order."""
    rows = []
    for root in _requests(captures):
        for interval in root.iter(f"{{{_EI}}}interval"):
            stamp = interval.findtext(f"{{{_XCAL}}}dtstart/{{{_XCAL}}}date-time")
            for payload in interval.iter(f"{{{_OADR}}}oadrReportPayload"):
                rid = payload.findtext(f"{{{_EI}}}rID") or ""
                value = next(payload.iter(f"{{{_EI}}}value"), None)
                if is_pseudonym(rid) and stamp and value is not None:
                    rows.append(Row(at=datetime.fromisoformat(stamp.replace("Z", "+00:00")),
                                    pseudonym=rid, value=float(value.text or "nan")))
    return rows
