"""Item bases: the units of event signals and report data (emix:itemBase substitution group).

OpenADR 2.0b schema (oadr_20b.xsd 9.x, oadr_power_20b.xsd): power and energy units live in the EMIX
power namespace, the rest in the oadr namespace. Most kinds fix their description (and often their
unit) in the XSD; the factories below fill those in, so a hand-built ItemBase is valid by default.
Units scale with an SI code (``MEGA`` = MW for ``POWER_REAL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from lxml import etree

from ._base import builder
from ._errors import InvalidData
from ._wire import (
    OADR,
    POWER,
    SCALE,
    enum_reader,
    format_bool,
    format_float,
    parse_bool,
    parse_float,
    q,
)
from ._writer import Node, leaf, leaf_value, sub

__all__ = ["ItemBase", "ItemKind", "PowerAttributes", "SiScale"]


class SiScale(StrEnum):
    PICO = "p"
    NANO = "n"
    MICRO = "micro"
    MILLI = "m"
    CENTI = "c"
    DECI = "d"
    KILO = "k"
    MEGA = "M"
    GIGA = "G"
    TERA = "T"
    NONE = "none"


class ItemKind(StrEnum):
    """The element name that carries the unit on the wire."""

    POWER_REAL = "powerReal"
    POWER_APPARENT = "powerApparent"
    POWER_REACTIVE = "powerReactive"
    ENERGY_REAL = "energyReal"
    ENERGY_APPARENT = "energyApparent"
    ENERGY_REACTIVE = "energyReactive"
    VOLTAGE = "voltage"
    CURRENT = "current"
    FREQUENCY = "frequency"
    CURRENCY = "currency"
    CURRENCY_PER_KWH = "currencyPerKWh"
    CURRENCY_PER_KW = "currencyPerKW"
    CURRENCY_PER_THM = "currencyPerThm"
    THERM = "Therm"
    TEMPERATURE = "temperature"
    CUSTOM = "customUnit"
    PULSE_COUNT = "pulseCount"


_POWER_NS_KINDS: Final = frozenset(
    {ItemKind.POWER_REAL, ItemKind.POWER_APPARENT, ItemKind.POWER_REACTIVE, ItemKind.ENERGY_REAL,
     ItemKind.ENERGY_APPARENT, ItemKind.ENERGY_REACTIVE, ItemKind.VOLTAGE}
)
_POWER_KINDS: Final = frozenset(
    {ItemKind.POWER_REAL, ItemKind.POWER_APPARENT, ItemKind.POWER_REACTIVE}
)
# (itemDescription, itemUnits) the XSD fixes for a kind; None where the sender chooses.
_FIXED: Final[dict[ItemKind, tuple[str, str | None]]] = {
    ItemKind.POWER_REAL: ("RealPower", "W"),
    ItemKind.POWER_APPARENT: ("ApparentPower", "VA"),
    ItemKind.POWER_REACTIVE: ("ReactivePower", "VAR"),
    ItemKind.ENERGY_REAL: ("RealEnergy", "Wh"),
    ItemKind.ENERGY_APPARENT: ("ApparentEnergy", "VAh"),
    ItemKind.ENERGY_REACTIVE: ("ReactiveEnergy", "VARh"),
    ItemKind.VOLTAGE: ("Voltage", "V"),
    ItemKind.CURRENT: ("Current", "A"),
    ItemKind.FREQUENCY: ("Frequency", "Hz"),
    ItemKind.THERM: ("Therm", "thm"),
    ItemKind.TEMPERATURE: ("temperature", None),
    ItemKind.PULSE_COUNT: ("pulse count", "count"),
    ItemKind.CURRENCY: ("currency", None),
    ItemKind.CURRENCY_PER_KWH: ("currencyPerKWh", None),
    ItemKind.CURRENCY_PER_KW: ("currencyPerKW", None),
    # the XSD's currencyItemDescriptionType has no word for therms: "currency" is the valid one
    ItemKind.CURRENCY_PER_THM: ("currency", None),
}
# oadr:currencyItemDescriptionType, the only itemDescription words the currency kinds allow.
_CURRENCY_DESCRIPTIONS: Final = frozenset({"currency", "currencyPerKW", "currencyPerKWh"})
_CURRENCY_KINDS: Final = frozenset(
    {ItemKind.CURRENCY, ItemKind.CURRENCY_PER_KWH, ItemKind.CURRENCY_PER_KW,
     ItemKind.CURRENCY_PER_THM}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerAttributes:
    hertz: float = 50.0
    voltage: float = 230.0
    ac: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemBase:
    """One unit. ``scale`` is absent only for pulse counts; ``power_attributes`` only for power."""

    kind: ItemKind
    description: str
    units: str
    scale: SiScale | None = SiScale.NONE
    power_attributes: PowerAttributes | None = None
    pulse_factor: float | None = None

    @classmethod
    def of(cls, kind: ItemKind, *, units: str | None = None, scale: SiScale = SiScale.NONE,
           power_attributes: PowerAttributes | None = None,
           description: str | None = None) -> ItemBase:
        """A valid item base for ``kind``; ``units`` is needed where the XSD does not fix it.

        A currency kind's ``description`` must be one of the XSD's three words (ValueError).
        """
        fixed_description, fixed_units = _FIXED.get(kind, (kind.value, None))
        description = description or fixed_description
        if kind in _CURRENCY_KINDS and description not in _CURRENCY_DESCRIPTIONS:
            raise ValueError(f"{kind} needs an itemDescription the XSD allows: one of "
                             f"{sorted(_CURRENCY_DESCRIPTIONS)}, not {description!r}")
        chosen = fixed_units if units is None else units
        if chosen is None:
            raise ValueError(f"{kind} needs units (e.g. EUR, celsius)")
        if kind is ItemKind.PULSE_COUNT:
            return cls(kind=kind, description=description, units=chosen, scale=None,
                       pulse_factor=1.0)
        if kind in _POWER_KINDS and power_attributes is None:
            power_attributes = PowerAttributes()
        return cls(kind=kind, description=description, units=chosen, scale=scale,
                   power_attributes=power_attributes)

    @classmethod
    def megawatts(cls) -> ItemBase:
        """Real power in MW, the unit of CBP setpoints and offers."""
        return cls.of(ItemKind.POWER_REAL, scale=SiScale.MEGA)

    @classmethod
    def kilowatts(cls) -> ItemBase:
        return cls.of(ItemKind.POWER_REAL, scale=SiScale.KILO)


def _namespace(kind: ItemKind) -> str:
    return POWER if kind in _POWER_NS_KINDS else OADR


_KIND_BY_TAG: Final = {q(_namespace(kind), kind.value): kind for kind in ItemKind}
_SI_SCALE: Final = q(SCALE, "siScaleCode")
_read_scale: Final = enum_reader(SiScale)


def is_item_base(element: etree._Element) -> bool:
    return element.tag in _KIND_BY_TAG


def is_item_base_tag(tag: str) -> bool:
    return tag in _KIND_BY_TAG


def encode_item_base(parent: Node, item: ItemBase) -> None:
    ns = _namespace(item.kind)
    element = sub(parent, q(ns, item.kind.value))
    leaf(element, q(ns, "itemDescription"), item.description)
    leaf(element, q(ns, "itemUnits"), item.units)
    if item.kind is ItemKind.PULSE_COUNT:
        leaf_value(element, q(OADR, "pulseFactor"), format_float(item.pulse_factor or 1.0))
        return
    leaf(element, _SI_SCALE, (item.scale or SiScale.NONE).value)
    if item.kind in _POWER_KINDS:
        attributes = item.power_attributes or PowerAttributes()
        holder = sub(element, q(POWER, "powerAttributes"))
        leaf_value(holder, q(POWER, "hertz"), format_float(attributes.hertz))
        leaf_value(holder, q(POWER, "voltage"), format_float(attributes.voltage))
        leaf_value(holder, q(POWER, "ac"), format_bool(attributes.ac))


_new_item_base: Final = builder(ItemBase)
_new_power_attributes: Final = builder(PowerAttributes)


def decode_item_base(element: etree._Element) -> ItemBase:
    kind = _KIND_BY_TAG.get(element.tag)
    if kind is None:
        raise InvalidData(f"unsupported item base <{etree.QName(element).localname}>")
    # Every itemBase type is a sequence of required elements (XSD): itemDescription, itemUnits,
    # siScaleCode (pulseFactor for a pulse count), and powerAttributes (hertz, voltage, ac) for
    # the power kinds only: read by position, no tag.
    parts = list(element)
    third = parts[2].text or ""
    if len(parts) == 4:
        hertz, voltage, ac = parts[3]
        power = _new_power_attributes(hertz=parse_float(hertz.text or ""),
                                      voltage=parse_float(voltage.text or ""),
                                      ac=parse_bool(ac.text or ""))
    else:
        power = None
    pulse = kind is ItemKind.PULSE_COUNT
    return _new_item_base(
        kind=kind,
        description=parts[0].text or "",
        units=parts[1].text or "",
        scale=None if pulse else _read_scale(third),
        power_attributes=power,
        pulse_factor=parse_float(third) if pulse else None,
    )
