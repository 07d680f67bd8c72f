"""Request limits (vtn/limits.py): the per-VEN token bucket and the global in-flight cap, as units
with an injected clock and against a running mutual-TLS VTN."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import CreatedOpt, CreateOpt, OptReason, OptType, Poll
from tests.kit.vtn import running_vtn
from tests.vtn.harness import CODEC, RawVen, raw_ven
from vtn.config import parse_config
from vtn.limits import DocumentCaps, LimitSettings, RateLimiter, VenBudgets
from vtn.services import Handlers

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refuses_with_the_wait_then_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_s=2.0, burst=3, clock=clock)
    assert [limiter.take("A") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("A") == pytest.approx(0.5)  # one token every 0.5 s
    clock.now += 0.5
    assert limiter.take("A") == 0.0
    assert limiter.take("A") > 0.0
    clock.now += 60  # refills to the burst, never beyond
    assert [limiter.take("A") for _ in range(4)][-1] > 0.0


def test_one_key_draining_its_bucket_leaves_others_untouched() -> None:
    limiter = RateLimiter(per_s=1.0, burst=2, clock=FakeClock())
    for _ in range(50):
        limiter.take("flooder")
    assert limiter.take("honest") == 0.0 and limiter.take("honest") == 0.0


def test_bucket_table_is_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_s=1.0, burst=1, max_tracked=10, clock=clock)
    for index in range(1000):
        limiter.take(f"ven-{index}")
        clock.now += 0.001
    assert len(limiter) <= 10
    assert limiter.take("ven-999") > 0.0  # the most recent identity is still remembered


def test_a_budget_goes_into_debt_and_refuses_until_it_is_repaid() -> None:
    """Budgets charge after the fact: a big request may overdraw the bucket; the VEN then waits
    until the refill has paid the debt back, and only that VEN waits."""
    clock = FakeClock()
    budgets = VenBudgets(LimitSettings(bytes_per_s=100.0, bytes_burst=1000, cpu_per_s=0.1,
                                       cpu_burst_s=1.0), clock=clock)
    assert budgets.wait("A") == 0.0
    budgets.charge_bytes("A", 1500)  # 500 bytes in debt: 5 s at 100 bytes/s
    assert budgets.wait("A") == pytest.approx(5.0)
    assert budgets.wait("B") == 0.0
    clock.now += 5.1
    assert budgets.wait("A") == 0.0
    budgets.charge_cpu("A", 1.3)  # CPU 0.3 s in debt: 3 s at 0.1 s/s
    assert budgets.wait("A") == pytest.approx(3.0)
    clock.now += 3.1
    assert budgets.wait("A") == 0.0


def test_budgets_switched_off_never_refuse() -> None:
    budgets = VenBudgets(LimitSettings(bytes_per_s=None, cpu_per_s=None), clock=FakeClock())
    budgets.charge_bytes("A", 10**12)
    budgets.charge_cpu("A", 10**6)
    assert budgets.wait("A") == 0.0


@pytest.mark.parametrize("bad", [{"per_s": 0.0}, {"burst": 0}, {"max_in_flight": 0},
                                 {"bytes_per_s": 0.0}, {"bytes_burst": 0}, {"cpu_per_s": -1.0},
                                 {"cpu_burst_s": 0.0}])
def test_nonsense_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LimitSettings(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"max_metadata_reports": 0}, {"max_report_points": -1}])
def test_nonsense_caps_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        DocumentCaps(**bad)


def test_limits_are_configuration() -> None:
    config = parse_config({"rate_limit_per_s": 5.0, "rate_limit_burst": 10, "max_in_flight": 7})
    assert (config.rate_limit_per_s, config.rate_limit_burst, config.max_in_flight) == (5.0, 10, 7)


def test_budgets_and_caps_are_configuration() -> None:
    config = parse_config({"byte_budget_per_s": 1.0, "byte_budget_burst": 2,
                           "cpu_budget_per_s": 0.5, "cpu_budget_burst_s": 3.0, "max_id_chars": 64,
                           "max_metadata_reports": 4, "max_report_descriptions": 5,
                           "max_report_points": 6,
                           "push": {"allow_private_targets": ["10.0.0.0/8"]}})
    assert (config.byte_budget_per_s, config.byte_budget_burst, config.cpu_budget_per_s,
            config.cpu_budget_burst_s) == (1.0, 2, 0.5, 3.0)
    assert (config.max_id_chars, config.max_metadata_reports, config.max_report_descriptions,
            config.max_report_points) == (64, 4, 5, 6)
    assert config.push_allow_private_targets == ("10.0.0.0/8",)


async def _poll_status(ven: RawVen) -> tuple[int, str | None]:
    async with ven.session.post(f"{ven.url}/OadrPoll", data=CODEC.encode(Poll(ven_id=ven.ven_id)),
                                headers={"Content-Type": "application/xml"}) as reply:
        await reply.read()
        return reply.status, reply.headers.get("Retry-After")


async def test_a_flood_from_one_ven_is_rate_limited_and_the_others_are_served(
        pki, tmp_path: Path) -> None:
    """Tried: one VEN fires 150 polls at once (burst 20, 0.5/s); two other VENs poll meanwhile."""
    burst, rate = 20, 0.5
    # The flood's connections all come from one address and one certificate: the listener's
    # caps on them (tests/security/test_socket_limits.py, test_connection_caps.py) are switched
    # off so that what answers here is the request rate limit.
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}",
                           rate_limit_per_s=rate, rate_limit_burst=burst,
                           max_pending_handshakes_per_address=None,
                           max_connections_per_peer=None) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as flooder, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as other_a, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[3])) as other_b:
        for ven in (flooder, other_a, other_b):
            await ven.register()
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def others() -> list[int]:
            return [(await _poll_status(ven))[0] for _ in range(5) for ven in (other_a, other_b)]

        async with asyncio.timeout(60):
            flood, honest = await asyncio.gather(
                asyncio.gather(*(_poll_status(flooder) for _ in range(150))), others())
        elapsed = loop.time() - started

        assert honest == [200] * 10  # never starved, never limited
        accepted = sum(1 for status, _ in flood if status == 200)
        refused = [retry for status, retry in flood if status == 429]
        assert accepted + len(refused) == 150  # nothing else: no 500, no 503
        # the registration took one token; the rest of the burst plus what refilled
        assert accepted <= burst + 1 + elapsed * rate
        assert refused and all(retry is not None and int(retry) >= 1 for retry in refused)


async def test_in_flight_cap_holds_and_refuses_with_503(pki, tmp_path: Path) -> None:
    """Tried: 8 requests held inside the VTN at once with a cap of 3."""
    cap = 3
    gate = asyncio.Event()
    inside = 0
    most_inside = 0
    all_in = asyncio.Event()

    async def hold(_ven_id: str, _message: object) -> None:
        nonlocal inside, most_inside
        inside += 1
        most_inside = max(most_inside, inside)
        if inside == cap:
            all_in.set()
        await gate.wait()
        inside -= 1

    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}",
                           handlers=Handlers(on_opt=hold), max_in_flight=cap,
                           rate_limit_per_s=None) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as other:
        await ven.register()
        await other.register()

        async def opt(index: int) -> tuple[int, str | None, bytes]:
            message = CreateOpt(opt_id=f"opt-{index}", opt_type=OptType.OPT_OUT,
                                opt_reason=OptReason.NOT_PARTICIPATING, ven_id=ven.ven_id,
                                created_date_time=NOW, request_id=f"r{index}")
            async with ven.session.post(f"{ven.url}/EiOpt", data=CODEC.encode(message),
                                        headers={"Content-Type": "application/xml"}) as reply:
                return reply.status, reply.headers.get("Retry-After"), await reply.read()

        async with asyncio.timeout(30):
            held = [asyncio.create_task(opt(i)) for i in range(cap)]
            await all_in.wait()
            extra = await asyncio.gather(*(opt(i) for i in range(cap, cap + 5)))
            assert await _poll_status(other) == (503, "1")  # the cap is global
            gate.set()
            done = await asyncio.gather(*held)

        assert most_inside == cap
        assert [(status, retry) for status, retry, _ in extra] == [(503, "1")] * 5
        for status, _, body in done:
            assert status == 200 and isinstance(CODEC.decode(body), CreatedOpt)
        assert (await _poll_status(other))[0] == 200  # and it serves again once they finished
