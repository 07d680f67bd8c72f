"""The benchmarks still run: each entry point with tiny sizes prints its table. No figure is
judged here (timings belong to the benchmarks themselves, never to pass/fail tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench._vtn_group import kill_tree
from tests.kit.databases import _admin_connection, postgres_url

ROOT = Path(__file__).parents[2]


def _bench(*args: str) -> str:
    """``python -m bench ARGS``'s output (:func:`_bench_streams`)."""
    return _bench_streams(*args)[0]


def _bench_streams(*args: str) -> tuple[str, str]:
    """``python -m bench ARGS``'s output and error streams; a run that outlasts ten minutes is
    killed with every process under it (its VTNs, workers and load generators) and fails."""
    with subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as bench:
        try:
            out, err = bench.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            kill_tree(bench.pid)
            out, err = bench.communicate()
            pytest.fail(f"bench {' '.join(args)}: not done within 600 s; stdout ends "
                        f"{out[-1000:]!r}, stderr ends {err[-1000:]!r}")
    assert bench.returncode == 0, err[-2000:]
    return out, err


def test_codec_prints_a_row_per_payload_type_both_ways() -> None:
    out = _bench("codec", "--samples", "1", "--runs", "1", "--no-sign")
    rows = [line for line in out.splitlines() if line.startswith(("decode ", "encode "))]
    assert len(rows) == 2 * 23
    assert sum(line.endswith(" bytes)") for line in out.splitlines()) == 23  # a table per type
    assert "rows short of their target" in out


def test_purge_prints_the_purge_and_the_writes_it_let_through() -> None:
    out = _bench("purge", "--vens", "3", "--instants", "300")
    assert "purge: 1200 rows in " in out  # the older two thirds of 3 x 600 points
    assert "writes committed meanwhile: " in out
    assert "purge: 1200 rows in " in _bench("purge", "--vens", "3", "--instants", "300", "--alone")


def test_coldwork_prints_the_unit_back_to_back_and_after_each_pause() -> None:
    out = _bench("coldwork", "--units", "3", "--rounds", "1", "--pause-ms", "1")
    lines = out.splitlines()
    assert lines[0].startswith("coldwork: decode+encode of oadrPoll, "), lines[0]
    for way in ("back to back ", "after a sleep ", "after a busy wait "):
        line = next(line for line in lines if line.startswith(way))
        assert " us per unit (" in line and line.endswith("x"), line


def test_vtn_prints_both_vtns_on_one_runtime_with_ratios() -> None:
    out = _bench("vtn", "--vens", "4", "--poll-vens", "2", "--report-vens", "2", "--seconds",
                 "0.2", "--runs", "1", "--no-signed", "--no-fanout", "--setup", "tuned",
                 "--cprofile")
    assert "setup: tuned (uvloop + serving tuning for both VTNs; 1 runs)" in out
    lines = out.splitlines()
    for figure in ("CPU per poll, ours bodies", "CPU per poll, openleadr bodies",
                   "CPU per 10-point report, ours bodies",
                   "CPU per 10-point report, openleadr bodies"):
        line = next(line for line in lines if line.startswith(figure))
        assert line.count(" ms") == 2 and line.rstrip().endswith("x"), line  # both VTNs, ratio
    assert any(line.startswith("repeat cache: requests served") and line.rstrip().endswith("%")
               for line in lines)
    assert "cProfile of our VTN during the poll and report loads" in out
    floor = next(line for line in lines if line.startswith("a bare mutual-TLS handshake"))
    assert "on our server context" in floor and "on openleadr's" in floor, floor
    assert floor.count(" ms (") == 2, floor  # both contexts, median (range)



def test_vtn_registration_only_prints_the_registration_and_the_floor_alone() -> None:
    out = _bench("vtn", "--vens", "4", "--runs", "1", "--setup", "tuned", "--registration-only")
    lines = out.splitlines()
    line = next(line for line in lines if line.startswith("VTN CPU per registration"))
    assert line.count(" ms") == 2 and line.rstrip().endswith("x"), line  # both VTNs, ratio
    assert not any(line.startswith(("CPU per poll", "signed poll", "fan-out")) for line in lines)
    assert any(line.startswith("a bare mutual-TLS handshake") for line in lines)

def test_fleet_prints_cpu_per_device_minute_for_both_vtns() -> None:
    out = _bench("fleet", "--vens", "4", "--minutes", "0.05", "--warmup-s", "1",
                 "--generators", "2", "--restart", "--cprofile")
    lines = out.splitlines()
    line = next(line for line in lines if line.startswith("VTN CPU per device-minute"))
    assert line.count(" ms") == 2, line
    assert "ours: " in out and "openleadr: " in out
    assert "2 load generator process(es)" in out
    line = next(line for line in lines if line.startswith("restart: all VENs registered again"))
    assert line.count(" s") == 2, line  # both VTNs took every VEN back (a refusal exits 1)
    for kind in ("ours", "openleadr"):
        assert re.search(rf"^{kind}: \d+ acks( \(\d+\.\d events each\))?, \d+ reconnects,"
                         r" 0 failed", out, re.M), out
    assert "our VTN over the measured window (cProfile" in out


def test_fleet_live_events_are_listed_and_acknowledged_in_every_event_poll() -> None:
    # no warm-up: every VEN's first poll, in the window, brings the two events published before
    # (three if the minute's event came first; a second minute's cannot fit in six seconds)
    out = _bench("fleet", "--vens", "3", "--live-events", "3", "--poll-s", "2", "--warmup-s",
                 "0", "--minutes", "0.1")
    assert "an event to all every minute, 2 before the warm-up" in out
    for kind in ("ours", "openleadr"):
        found = re.search(rf"^{kind}: (\d+) acks \((\d+\.\d) events each\)", out, re.M)
        assert found and int(found[1]) >= 1 and 2.0 <= float(found[2]) <= 3.0, out


def test_fleetkinds_prints_each_kind_and_the_weighed_minute_for_both_vtns() -> None:
    out = _bench("fleetkinds", "--vens", "3", "--rounds", "1", "--runs", "1", "--cprofile", "ack",
                 "--floor", "--spacing-ms", "1")
    lines = out.splitlines()
    assert lines[0].startswith("fleet kinds: 3 VENs, one request in flight 1 ms apart,"), lines[0]
    for row in ("poll ", "report ", "event poll ", "ack ", "reconnect ", "publish, per VEN"):
        line = next(line for line in lines if line.startswith(row))
        assert line.count(" ms") == 3, line  # both VTNs, and ours off its event loop
    weighed = next(line for line in lines if line.startswith("one device-minute, weighed"))
    assert weighed.count(" ms") == 2, weighed  # both VTNs
    assert "failed:" not in out  # every request of every kind answered with 200
    assert "our VTN across ack requests (cProfile" in out and "on_created_event" in out
    for server in ("aiohttp Application + router", "aiohttp low-level web.Server",
                   "bare asyncio.Protocol"):
        floor = next(line for line in lines if line.startswith(f"floor, {server}, fixed reply"))
        assert floor.count(" ms") == 2, floor  # per request, per device-minute


def test_cbp_prints_the_aggregators_cpu_its_threads_and_its_profile() -> None:
    out = _bench("cbp", "--devices", "60", "--steady-s", "2", "--cprofile")
    assert re.search(r"^\(b\) aggregator CPU per device per minute of steady telemetry: [\d.]+ ms",
                     out, re.M), out
    threads = re.findall(r"^    thread .+: [\d.]+ ms CPU and [\d.]+ wake-ups per device-minute$",
                         out, re.M)
    assert threads, out
    assert "own time by area:" in out and "Ordered by: internal time" in out


@pytest.fixture
async def postgres_server() -> str:
    """The PostgreSQL server the bench makes its databases on (skipped, or failed in CI, when
    it does not answer: tests/vtn/conftest.py)."""
    await (await _admin_connection(postgres_url())).close()
    return postgres_url()


def test_workers_prints_cpu_per_request_for_one_and_two_workers(postgres_server: str) -> None:
    out, err = _bench_streams("workers", "--vens", "20", "--minutes", "0.2", "--warmup-s", "1",
                              "--runs", "1", "--server", postgres_server)
    # asyncio's word for a task that failed with nobody awaiting it (in this process or a load
    # generator's): every task of the benchmark is awaited, its failure handled
    assert "exception was never retrieved" not in err, err[-2000:]
    lines = out.splitlines()
    for workers in (1, 2):
        line = next(line for line in lines if line.startswith(f"--workers {workers}: "))
        assert "CPU per request" in line and "PostgreSQL" in line and "failed 0" in line, line
    assert any(line.startswith("two workers' CPU per request over one's: ") for line in lines)
