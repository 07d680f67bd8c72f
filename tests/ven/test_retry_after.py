"""The VEN honours Retry-After on HTTP 429 and 503 (poll loop and report outbox), bounded by the
back-off cap; against a scripted VTN over real mutual TLS, with the waits recorded, not slept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from schemas import Message, Poll, ReportInterval, ReportPayload, UpdateReport
from tests.kit.pki import Pki
from ven import Backoff, Connection, Hooks, TimeSource, VenClient, VenSettings, VtnUnavailable
from ven._http import retry_after_seconds

from .conftest import scripted_vtn
from .scripts import T0, default_script

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CAP = 60.0
# random() == 0: no jitter, so every wait is exact: base * 2**attempt, or exactly the Retry-After
EXACT = Backoff(base=0.001, cap=CAP, random=lambda: 0.0)


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0), (" 120 ", 120.0), (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
    (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),
    ("soon", None), ("-5", None), ("", None), (None, None), ("\u0663", None),  # Arabic-Indic 3
])
def test_retry_after_header_is_read_as_seconds_or_http_date(header: str | None,
                                                            seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_delay_after_waits_at_least_the_ask_but_never_beyond_the_cap() -> None:
    assert EXACT.delay_after(0, None) == EXACT.delay(0) == 0.001
    assert EXACT.delay_after(0, 7.0) == 7.0
    assert EXACT.delay_after(0, 86_400.0) == CAP        # a day asked for: the cap bounds it
    assert EXACT.delay_after(20, 0.5) == CAP            # the back-off is already longer
    spread = Backoff(base=0.001, cap=CAP, jitter=0.5, random=lambda: 0.999)
    assert 10.0 <= spread.delay_after(0, 10.0) <= 12.5  # spread above, never below, the ask


async def test_poll_loop_waits_for_retry_after_then_polls_again(pki: Pki) -> None:
    """Tried: polls answered 503 Retry-After: 7, 429 Retry-After: 3, 503 without it, 429
    Retry-After: 86400; the loop waits 7 s, 3 s, its own back-off, then the cap; then polls on."""
    refusals = [web.Response(status=503, headers={"Retry-After": "7"}),
                web.Response(status=429, headers={"Retry-After": "3"}),
                web.Response(status=503),
                web.Response(status=429, headers={"Retry-After": "86400"})]
    polls: list[int] = []
    answered = asyncio.Event()
    waits: list[tuple[float, int]] = []

    def refuse(service: str, message: Message) -> web.Response | None:
        if not isinstance(message, Poll):
            return None
        polls.append(len(polls))
        if refusals:
            return refusals.pop(0)
        answered.set()
        return None

    async def recorded(seconds: float) -> None:  # what the VEN would wait, and when it asked
        waits.append((seconds, len(polls)))

    async with scripted_vtn(pki.server_context(), default_script(extra=refuse)) as vtn, \
            VenClient(VenSettings(
                ven_name="v",
                connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context(),
                                      poll_interval=0.01, backoff=EXACT),
                time=TimeSource(retry_sleep=recorded))) as ven:
        ven.start_polling()
        async with asyncio.timeout(10):
            await answered.wait()
        assert ven.registration is not None  # a 429 is not a refusal: still registered
    assert waits == [(7.0, 1), (3.0, 2), (0.004, 3), (CAP, 4)]


async def test_report_refused_with_429_is_kept_and_resent_after_retry_after(pki: Pki) -> None:
    """Tried: the first oadrUpdateReport answered 429 Retry-After: 5. The report stays in the
    outbox (it is not a refusal for good), is sent again after 5 s, and arrives once."""
    updates: list[UpdateReport] = []
    waits: list[float] = []
    delivered = asyncio.Event()

    def limit_first(service: str, message: Message) -> web.Response | None:
        if not isinstance(message, UpdateReport):
            return None
        updates.append(message)
        if len(updates) == 1:
            return web.Response(status=429, headers={"Retry-After": "5"})
        delivered.set()
        return None

    async def recorded(seconds: float) -> None:
        waits.append(seconds)

    errors: list[Exception] = []
    async with scripted_vtn(pki.server_context(), default_script(extra=limit_first)) as vtn, \
            VenClient(VenSettings(
                ven_name="v",
                connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context(),
                                      backoff=EXACT),
                hooks=Hooks(on_error=errors.append),
                time=TimeSource(retry_sleep=recorded, clock=lambda: T0))) as ven:
        await ven.register()
        await ven.send_report("rr-1", (ReportInterval(dtstart=T0, payloads=(
            ReportPayload(r_id="meter-1", value=1.0),)),), report_specifier_id="spec-1")
        async with asyncio.timeout(10):
            await delivered.wait()
            assert await ven.flush_reports() == 0  # nothing left behind
    assert waits == [5.0]
    assert len(updates) == 2 and updates[0] == updates[1]  # the same bytes, sent again
    assert len(errors) == 1 and isinstance(errors[0], VtnUnavailable)
    assert errors[0].retry_after == 5.0
