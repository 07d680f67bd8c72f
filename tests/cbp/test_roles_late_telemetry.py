"""Telemetry that reaches a busy aggregator after its sample closed: tallied, not filed under a
sample that will never close again, and proof that the device is alive (not dropped out)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from cbp.market import Sample
from cbp.pool import Allocator, MspRecorder
from cbp.roles import CbpSettings
from cbp.roles import operation as operation_module
from cbp.roles.devicebook import MAX_AGE_SAMPLES, MAX_LEAD_SAMPLES, DeviceBook, DeviceEntry
from cbp.roles.messages import activation_event
from cbp.roles.operation import DispatchedActivation, Operation
from cbp.roles.profile import DEVICE_POWER_RID
from schemas import Report, ReportInterval, ReportName, ReportPayload, Target
from schemas.logtext import MAX_LOGGED_CHARS

SETTINGS = CbpSettings.compressed()
PERIOD = SETTINGS.rules.sample_period
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _book(*devices: UUID) -> DeviceBook:
    book = DeviceBook(SETTINGS.rules, SETTINGS.pool)
    for n, device in enumerate(devices):
        book.add(DeviceEntry(ven_id=f"ven-{n}", device_uuid=device, prosumer_id=f"P{n}",
                             device_class="ev_charger", power_bucket="7-11kW", rated_kw=Decimal(11),
                             registered=True))
    return book


def _batch(*instants: datetime) -> Report:
    return Report(report_request_id="r", report_specifier_id="s", created_date_time=T0,
                  report_name=ReportName.TELEMETRY_USAGE,
                  intervals=tuple(ReportInterval(dtstart=at, duration=PERIOD, payloads=(
                      ReportPayload(r_id=DEVICE_POWER_RID, value=3.0),)) for at in instants))


def test_a_reading_for_a_closed_sample_is_tallied_late_and_never_reopens_it() -> None:
    """Tried: sample T0 closed without the device, then its batch with T0 and T0+4 s arrives.
    T0 is not opened again (nothing pending at or before it), the late point is counted, T0+4 s
    is pending as usual, and the device counts as heard from after T0."""
    device = uuid4()
    book = _book(device)
    _, rows, _ = book.close(T0)
    assert device not in rows
    book.take_report("ven-0", _batch(T0, T0 + PERIOD), now=T0 + 3 * PERIOD)
    assert book.late_points == 1
    assert book.pending_before(T0) == ()
    assert book.pending_before(T0 + PERIOD) == (T0 + PERIOD,)
    assert book.heard_after(device, T0) and not book.heard_after(device, T0 + PERIOD)


async def test_a_device_whose_rows_came_late_but_that_reports_on_is_not_lost() -> None:
    """Two dispatched devices miss three samples in a row at closing; one of them had already
    sent a later sample (its batch was late, the aggregator busy): only the silent one is lost."""
    late, silent = uuid4(), uuid4()
    book = _book(late, silent)
    samples = tuple(T0 + i * PERIOD for i in range(3))
    operation = Operation(settings=SETTINGS, book=book, msp=MspRecorder(SETTINGS.pool),
                          windows=[], ctx=_no_storage, clock=lambda: T0,
                          consenting=frozenset, order=random.Random(0))
    activation = DispatchedActivation(
        event_id="act", setpoints=tuple(Sample(at=at, value=Decimal("0.01")) for at in samples),
        device_events={late: "act-0-0", silent: "act-0-1"}, received_at=T0,
        watch=Allocator(SETTINGS.pool))
    operation.activations["act"] = activation
    book.take_report("ven-0", _batch(samples[-1] + PERIOD), now=T0)
    for at in samples:
        await operation.observe(at, {})
    assert activation.lost == {silent}
    assert activation.redispatches == 0  # nothing of the activation was left to re-dispatch


def _no_storage() -> object:
    raise AssertionError("nothing is published when no sample is left to re-dispatch")


async def test_the_tso_event_id_is_logged_escaped_and_capped_at_dispatch(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The TSO chooses the eventID: the aggregator's "dispatched" line keeps it on one line and
    cuts it at MAX_LOGGED_CHARS characters."""
    published: list[int] = []

    async def publish(_ctx: object, events: Sequence[object]) -> None:
        published.append(len(events))

    monkeypatch.setattr(operation_module, "publish_events", publish)
    caplog.set_level(logging.INFO, "cbp.roles.operation")
    book = _book(uuid4())
    operation = Operation(settings=SETTINGS, book=book, msp=MspRecorder(SETTINGS.pool),
                          windows=[], ctx=lambda: None, clock=lambda: T0,
                          consenting=frozenset, order=random.Random(0))
    event_id = "act" + "x" * 3000 + "\n2026-12-07 01:00:00,000 ERROR forged"
    await operation.handle(activation_event(
        event_id=event_id, start=T0 + PERIOD, period=PERIOD, values=[1.0, 1.0],
        target=Target(), market_context="http://cbp.example/mc", created=T0))
    assert published == [0]  # nobody consents: an empty dispatch, logged all the same
    (line,) = [r.getMessage() for r in caplog.records if "dispatched over" in r.getMessage()]
    assert line.isprintable() and "x" * 100 in line and "characters)" in line, line[-200:]
    assert len(line) < MAX_LOGGED_CHARS + 100, len(line)


@pytest.mark.parametrize("at", [
    T0 + timedelta(milliseconds=500),  # off the grid
    T0 + timedelta(seconds=1),
    T0 - MAX_AGE_SAMPLES * PERIOD - PERIOD,  # older than the backlog an outage leaves
    datetime(2000, 1, 1, tzinfo=UTC),  # on the grid, decades old
    T0 + MAX_LEAD_SAMPLES * PERIOD + PERIOD,  # a clock far ahead
    datetime(2100, 1, 1, tzinfo=UTC),
], ids=["half-second", "one-second", "past-horizon", "year-2000", "past-lead", "year-2100"])
def test_a_reading_at_an_instant_no_device_samples_at_is_refused_and_opens_nothing(
        at: datetime, caplog: pytest.LogCaptureFixture) -> None:
    """Filed, such a reading would open a sample of its own: never closed by the grid walk (kept
    for good), or the walk's start after a restart (decades of samples to walk; a grid no other
    device's sample is on), and a pool row of one device. It is refused, tallied, warned about
    once per device, and does not count as the device being alive."""
    device, other = uuid4(), uuid4()
    book = _book(device, other)
    with caplog.at_level(logging.WARNING, logger="cbp.roles.devicebook"):
        for _ in range(3):
            book.take_report("ven-0", _batch(at), now=T0)
        book.take_report("ven-1", _batch(T0), now=T0)
    assert book.refused_points == 3 and book.points_received == 1
    assert book.pending_before(datetime(2200, 1, 1, tzinfo=UTC)) == (T0,)
    assert not book.heard_after(device, datetime(1999, 1, 1, tzinfo=UTC))
    (warning,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert "ven-0" in warning.getMessage() and at.isoformat() in warning.getMessage()


def test_the_edges_of_the_accepted_span_are_filed() -> None:
    """The oldest backlog and the furthest lead the book takes, both on the grid."""
    device = uuid4()
    book = _book(device)
    oldest, furthest = T0 - MAX_AGE_SAMPLES * PERIOD, T0 + MAX_LEAD_SAMPLES * PERIOD
    book.take_report("ven-0", _batch(oldest, furthest), now=T0)
    assert book.refused_points == 0 and book.points_received == 2
    assert book.pending_before(furthest) == (oldest, furthest)
