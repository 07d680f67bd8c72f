"""``schemas._base.builder``, the decoders' class call: the same object, the same refusals."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field, fields, is_dataclass
from typing import Any

import pytest
from hypothesis import given, settings

import schemas
from schemas._base import builder
from schemas.parts import Target
from schemas.reports import Report, ReportDescription
from schemas.units import ItemBase, PowerAttributes

from .test_reports import reports


def _rebuilt(value: Any) -> Any:
    """``value`` built again, every dataclass in it (its own fields first) by its builder."""
    if isinstance(value, tuple):
        return tuple(_rebuilt(item) for item in value)
    if not is_dataclass(value) or isinstance(value, type):
        return value
    given_fields = {f.name: _rebuilt(getattr(value, f.name)) for f in fields(value)}
    return builder(type(value))(**given_fields)


def _same(built: Any, called: Any) -> None:
    assert type(built) is type(called)
    assert built == called and hash(built) == hash(called) and repr(built) == repr(called)


@settings(max_examples=60, deadline=None)
@given(reports)
def test_builder_builds_what_the_class_call_does(report: Report) -> None:
    # a report holds every class the report decoders build: descriptions, their targets, item
    # bases (with power attributes) and sampling rates, and intervals of payloads
    built = _rebuilt(report)
    _same(built, report)
    for description, original in zip(built.descriptions, report.descriptions, strict=True):
        _same(description, original)
        for target, called in ((description.report_subject, original.report_subject),
                               (description.report_data_source, original.report_data_source),
                               (description.item_base, original.item_base)):
            _same(target, called)
    with pytest.raises(FrozenInstanceError):
        built.report_id = "other"  # type: ignore[misc]


def test_builder_takes_the_defaults_and_keywords_of_the_class_call() -> None:
    _same(builder(Target)(group_ids=(), group_names=(), resource_ids=(), ven_ids=(),
                          party_ids=()), Target())
    _same(builder(PowerAttributes)(hertz=50.0, voltage=230.0, ac=True), PowerAttributes())
    poll = builder(schemas.Poll)(ven_id="ven-1")
    _same(poll, schemas.Poll(ven_id="ven-1"))
    assert poll.signature is schemas.SignatureState.ABSENT
    with pytest.raises(TypeError):
        builder(ItemBase)("positional")
    with pytest.raises(TypeError):
        builder(ItemBase)(kind=None, description="", units="", colour="red")


def test_builder_refuses_what_the_class_call_refuses() -> None:
    """The ``__post_init__`` checks run, with the same wording."""
    for kind, arguments in (
        (ReportDescription, {"r_id": "r", "report_type": "usage ", "reading_type": "Direct Read"}),
        (ReportDescription, {"r_id": "r", "report_type": "usage", "reading_type": "x- "}),
        (Report, {"report_request_id": "0", "report_specifier_id": "s",
                  "created_date_time": None, "report_name": "TELEMETRY"}),
    ):
        with pytest.raises(schemas.LocalProtocolError) as called:
            kind(**arguments)  # type: ignore[operator]
        with pytest.raises(schemas.LocalProtocolError) as built:
            builder(kind)(**arguments)  # type: ignore[type-var]
        assert str(built.value) == str(called.value)


def test_builder_refuses_classes_it_cannot_build_alike() -> None:
    @dataclass(frozen=True)
    class Unslotted:
        value: int

    @dataclass(frozen=True, slots=True)
    class Factory:
        values: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="no slots"):
        builder(Unslotted)
    with pytest.raises(TypeError, match="default factory"):
        builder(Factory)
