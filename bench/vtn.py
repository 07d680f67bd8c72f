"""VTN benchmark: the crowdflex VTN against openleadr 0.5.36's OpenADRServer, same machine, same
runtime, repeated.

Each VTN runs in a fresh process of its own per run (``bench._vtn_server``), pinned to one core
when the machine has two or more, on 127.0.0.1 with a free port and real mutual TLS (EC P-256
certificates minted for this run in a temporary directory and deleted after it). This process is
the load generator (``bench._vtn_load``: one client certificate per VEN), pinned to another core.
Ours stores in a SQLite file (``--storage sqlite``, the default) or in a PostgreSQL database
created for each run and dropped after it (``--storage postgresql``, on the server of
``--postgres-url``, which must run on this machine); openleadr keeps everything in memory. On
PostgreSQL every VTN CPU figure includes the CPU of the PostgreSQL backends serving the run's
database (``bench._postgres``: read from /proc), which run on other cores than the VTN.

Fairness: both VTNs run on the same runtime, and the table is printed for each setup asked for:
``tuned`` (uvloop and ``vtn.runtime.tune_serving_process`` for both, as ``crowdflex vtn`` serves)
and ``plain`` (asyncio's loop, the interpreter's defaults, for both). Runs alternate their order
(ours first, then openleadr first: ABBA), ``--runs`` of each, every run in fresh processes; the
table gives the median and the range (min-max) of each figure and of the per-run ratio, and the
load average before the first and after the last run. The poll and report loads send bodies encoded
by ours and by openleadr's ``create_message``, each on a row of its own. Our repeat cache
(``vtn.repeats``: a VEN's identical bytes decoded once) is on unless ``--no-repeat-cache``; its hit
rate is printed, because identical polls are our best case, not a fleet's.

Per run, in order:

1. registration: ``--vens`` VENs send oadrCreatePartyRegistration, each on a new mTLS connection,
   ``--concurrency`` at a time (registrations/s, and the VTN CPU per registration: the
   registrations/s figure is the load generator's as much as the VTN's);
2. oadrPoll: ``--poll-vens`` VENs post pre-encoded oadrPoll back to back on keep-alive
   connections for ``--seconds`` per encoding (VTN CPU per poll);
3. oadrUpdateReport: ``--report-vens`` VENs post 10-point TELEMETRY_USAGE reports, every point new,
   for ``--seconds`` per encoding (VTN CPU per report);
4. fan-out: all ``--vens`` VENs poll every ``--interval`` s on random phases; one event is
   published to all; the VTN process times publish -> every VEN's oadrCreatedEvent stored, and
   its CPU meanwhile beyond what the empty polls cost, per VEN. The wall time cannot be under one
   poll interval, so the CPU per VEN is the figure to compare.

5. storage: ``--store-vens`` writers store ``--store-points``-point reports straight into
   our storage (no HTTP), every point new, all at once, for ``--seconds``: report points
   stored per second (wall time).

``--registration-only`` stops each run after step 1 and skips the signed polls: the registration
figures and the handshake floor alone, for as many runs as the question needs.

Then, unless ``--no-signed``: ``--signed-vens`` VENs with RSA-2048 certificates post
``--signed-polls`` polls unsigned and then signed (each body signed just before it is sent, so
that it is fresh for openleadr's 5-s replay window), ``--signed-runs`` times per VTN; both VTNs
verify every VEN signature and sign their replies with the same RSA-2048 key. openleadr loads
the PEM signing key twice per message: that cost, measured alone, is printed on its own line.
Then, on ours, the signature CPU bomb of security review 2 (finding 1): one VEN sends ``HOSTILE``
663 KB payloads whose SignedInfo holds 1,000 references to one 400 KB ds:Object, every digest and
the value correct (``tests.fuzz.signing.reference_bomb``): VTN CPU per hostile request (before
the fix: ~3.4 s).

VTN CPU is ``time.process_time()`` read in the VTN process before and after a load, so it counts
every thread of that process (ours: the SQLite threads too) and none of the load generator.
Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._postgres import DEFAULT_ADMIN_URL, BackendCpu, fresh_database
from bench._vtn_load import (
    ENCODINGS,
    Control,
    LoadResult,
    Ven,
    VenIdentity,
    close_vens,
    drain,
    fanout,
    open_vens,
    poll_load,
    register_all,
    report_load,
    signed_poll_load,
)
from bench._vtn_server import SETUPS, ServerSpec, serve

KINDS = ("ours", "openleadr")
HOSTILE = 4  # reference bombs in the hostile measurement: under the VTN's failure budget (5)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    ca: Path
    vtn_cert: Path
    vtn_key: Path
    signing_cert: Path
    signing_key: Path
    vens: tuple[VenIdentity, ...]
    rsa_vens: tuple[VenIdentity, ...]


def mint(directory: Path, *, vens: int, rsa_vens: int) -> Pki:
    """A CA, the VTN's EC TLS and RSA-2048 signing certificates, EC and RSA VEN certificates."""
    from devpki import CertificateAuthority, KeyType, Role

    ca = CertificateAuthority.create(common_name="crowdflex bench CA")
    ca_cert, _ = ca.write(directory)
    vtn_cert, vtn_key = ca.issue("bench-vtn", Role.VTN).write(directory)
    signing = ca.issue("bench-vtn-signing", Role.VTN, key_type=KeyType.RSA)
    signing_cert, signing_key = signing.write(directory)

    def identities(prefix: str, count: int, key_type: KeyType) -> tuple[VenIdentity, ...]:
        out = []
        for n in range(count):
            cert, key = ca.issue(f"{prefix}-{n:04d}", key_type=key_type).write(directory)
            out.append(VenIdentity(name=f"{prefix}-{n:04d}", cert=cert, key=key))
        return tuple(out)

    return Pki(ca=ca_cert, vtn_cert=vtn_cert, vtn_key=vtn_key, signing_cert=signing_cert,
               signing_key=signing_key, vens=identities("ven", vens, KeyType.EC),
               rsa_vens=identities("sven", rsa_vens, KeyType.RSA))


class VtnProcess:
    """A VTN in a spawned process, pinned to ``cpu`` when given; a context manager."""

    def __init__(self, spec: ServerSpec, cpu: int | None) -> None:
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe()
        self.process = context.Process(target=_pinned_serve, args=(spec, theirs, cpu),
                                       name=f"bench-vtn-{spec.kind}", daemon=True)
        self.control = Control(mine)
        self.port = 0

    def __enter__(self) -> VtnProcess:
        self.process.start()
        self.port = self.control.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.control.stop()
        finally:
            self.process.join(timeout=30)
            if self.process.is_alive():
                self.process.kill()  # our own child, by handle
                self.process.join(timeout=5)


def _pinned_serve(spec: ServerSpec, conn: Any, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    serve(spec, conn)


@dataclass(slots=True, kw_only=True)
class RunResult:
    """One VTN's figures in one run: metric name -> value, plus what went wrong."""

    kind: str
    figures: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    cprofile: str = ""


# metric name -> (unit, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "registrations/s": ("/s", True),
    "VTN CPU per registration": ("ms", False),
    **{f"CPU per poll, {e} bodies": ("ms", False) for e in ENCODINGS},
    **{f"CPU per 10-point report, {e} bodies": ("ms", False) for e in ENCODINGS},
    "fan-out: publish -> all acks": ("s", False),
    "fan-out: CPU per VEN beyond empty polls": ("ms", False),
    "storage: report points stored/s": ("/s", True),
    "PostgreSQL backends started": ("", False),
    "signed poll: CPU per poll, unsigned": ("ms", False),
    "signed poll: CPU per poll, signed": ("ms", False),
    "hostile signed request (1,000 references): CPU": ("ms", False),
}


async def _cpu_of(control: Control, work: Any) -> tuple[Any, float]:
    before = await control.call("cpu")
    result = await work
    return result, await control.call("cpu") - before


def _per_request(result: RunResult, name: str, load: LoadResult, cpu_s: float) -> None:
    result.figures[name] = cpu_s / load.count if load.count else math.nan
    if load.errors:
        result.errors.append(f"{name}: {load.errors} replies other than 200")


@contextlib.asynccontextmanager
async def _database(args: argparse.Namespace, db: Path) -> AsyncIterator[
        tuple[str, BackendCpu | None]]:
    """Our storage URL for one VTN process, and the CPU meter of its PostgreSQL backends."""
    if args.storage == "sqlite":
        yield f"sqlite:///{db}", None
        return
    async with fresh_database(args.postgres_url) as (url, backends):
        yield url, backends


def _metered(vtn: VtnProcess, backends: BackendCpu | None) -> None:
    if backends is not None:
        vtn.control.more_cpu = backends.cpu_s


async def run_kind(kind: str, setup: str, pki: Pki, args: argparse.Namespace, cpu: int | None,
                   tmp: Path, run: int) -> RunResult:
    async with _database(args, tmp / f"{kind}-{setup}-{run}.db") as (url, backends):
        result = await _run_kind(kind, setup, pki, args, cpu, url, backends)
    return result


async def _run_kind(kind: str, setup: str, pki: Pki, args: argparse.Namespace, cpu: int | None,
                    url: str, backends: BackendCpu | None) -> RunResult:
    spec = ServerSpec(kind=kind, cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca,
                      storage_url=url, poll_frequency_s=args.interval,
                      setup=setup, repeat_cache=not args.no_repeat_cache)
    result = RunResult(kind=kind)
    with VtnProcess(spec, cpu) as vtn:
        _metered(vtn, backends)
        vens = open_vens(list(pki.vens), pki.ca, vtn.port)
        try:
            registration_s, cpu_s = await _cpu_of(vtn.control,
                                                  register_all(vens, args.concurrency))
            result.figures["registrations/s"] = len(vens) / registration_s
            result.figures["VTN CPU per registration"] = cpu_s / len(vens)
            if not args.registration_only:
                await _workloads(kind, args, vtn, vens, backends, result)
        finally:
            await close_vens(vens)
    result.errors += [e for v in vens for e in v.errors[:3]][:10]
    return result


async def _workloads(kind: str, args: argparse.Namespace, vtn: VtnProcess, vens: list[Ven],
                     backends: BackendCpu | None, result: RunResult) -> None:
    """Everything a run measures after the registration: polls, reports, fan-out, storage."""
    await drain(vens)
    cprofile = args.cprofile and kind == "ours"
    if cprofile:
        await vtn.control.call("cprofile", True)
    for encoding in ENCODINGS:
        load, cpu_s = await _cpu_of(vtn.control, poll_load(
            vens[: args.poll_vens], args.seconds, encoding))
        _per_request(result, f"CPU per poll, {encoding} bodies", load, cpu_s)
    for encoding in ENCODINGS:
        load, cpu_s = await _cpu_of(vtn.control, report_load(
            vens[: args.report_vens], args.seconds, encoding))
        _per_request(result, f"CPU per 10-point report, {encoding} bodies", load, cpu_s)
    if cprofile:
        result.cprofile = await vtn.control.call("cprofile", False)
    repeats = await vtn.control.call("repeats")
    if repeats is not None:
        served, decoded, replayed, encoded = repeats
        result.figures["repeat cache: requests served"] = served / max(served + decoded, 1)
        result.figures["repeat cache: replies served"] = replayed / max(
            replayed + encoded, 1)
    if not args.no_fanout:
        _, all_acks_s, acks, fanout_cpu_s = await fanout(
            vens, vtn.control, args.interval, settle_s=args.interval * 2)
        result.figures["fan-out: publish -> all acks"] = all_acks_s
        result.figures["fan-out: CPU per VEN beyond empty polls"] = fanout_cpu_s / len(vens)
        if acks < len(vens):
            result.errors.append(f"fan-out: {acks} of {len(vens)} acks")
    if kind == "ours":
        writers = [v.ven_id for v in vens[: args.store_vens]]
        stored, wall_s = await vtn.control.call(
            "store", writers, args.store_points, args.seconds,
            timeout_s=args.seconds + 60)
        result.figures["storage: report points stored/s"] = stored / wall_s
    if backends is not None:
        result.figures["PostgreSQL backends started"] = backends.started


async def run_signed(kind: str, setup: str, pki: Pki, args: argparse.Namespace,
                     cpu: int | None, tmp: Path, run: int) -> RunResult:
    """Poll load from RSA-2048 VENs, unsigned then signed, both VTNs verifying and signing."""
    result = RunResult(kind=kind)
    for signed in (False, True):
        db = tmp / f"{kind}-{setup}-{run}-{'signed' if signed else 'plain'}.db"
        async with _database(args, db) as (url, backends):
            load = await _run_signed(kind, setup, pki, args, cpu, url, backends, signed, result)
        name = f"signed poll: CPU per poll, {'signed' if signed else 'unsigned'}"
        _per_request(result, name, load[0], load[1])
    return result


async def _run_signed(kind: str, setup: str, pki: Pki, args: argparse.Namespace,
                      cpu: int | None, url: str, backends: BackendCpu | None, signed: bool,
                      result: RunResult) -> tuple[LoadResult, float]:
    spec = ServerSpec(kind=kind, cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca,
                      storage_url=url,
                      sign_cert=pki.signing_cert if signed else None,
                      sign_key=pki.signing_key if signed else None, setup=setup,
                      repeat_cache=not args.no_repeat_cache)
    with VtnProcess(spec, cpu) as vtn:
        _metered(vtn, backends)
        vens = open_vens(list(pki.rsa_vens), pki.ca, vtn.port, sign=signed)
        try:
            await register_all(vens, args.concurrency)
            await drain(vens)
            load, cpu_s = await _cpu_of(vtn.control, signed_poll_load(vens, args.signed_polls))
            if signed and kind == "ours":
                result.figures["hostile signed request (1,000 references): CPU"] = (
                    await _hostile_cpu(vtn, vens[0]))
        finally:
            await close_vens(vens)
    result.errors += [e for v in vens for e in v.errors[:2]][:4]
    return load, cpu_s


async def _hostile_cpu(vtn: VtnProcess, ven: Any) -> float:
    """VTN CPU seconds per reference bomb from ``ven`` (fewer than its failure budget allows)."""
    import schemas
    from tests.fuzz.signing import reference_bomb

    signer = schemas.Signer(ven.identity.key.read_bytes(), ven.identity.cert.read_bytes())
    bombs = [reference_bomb(ven.encode(schemas.Poll(ven_id=ven.ven_id)), signer)
             for _ in range(HOSTILE)]

    async def send() -> None:
        for bomb in bombs:
            await ven.post("OadrPoll", bomb)

    _, cpu_s = await _cpu_of(vtn.control, send())
    return float(cpu_s) / HOSTILE


def _cores() -> tuple[int | None, int | None]:
    """(VTN core, load core): different cores when there are two or more."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    return (available[-1], available[0]) if len(available) >= 2 else (None, None)


def openleadr_key_loading_s(pki: Pki, samples: int = 5) -> float:
    """What openleadr spends per signed message loading the PEM signing key (twice)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = pki.signing_key.read_bytes()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        load_pem_private_key(data, None)
        load_pem_private_key(data, None)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def abba(runs: int) -> list[tuple[str, ...]]:
    """The order of the two VTNs in each run: AB, BA, BA, AB, AB, BA, ..."""
    return [KINDS if (run + 1) // 2 % 2 == 0 else KINDS[::-1] for run in range(runs)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench vtn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vens", type=int, default=200, help="VENs registered and fanned out to")
    parser.add_argument("--poll-vens", type=int, default=100, help="VENs in the poll load")
    parser.add_argument("--report-vens", type=int, default=100, help="VENs in the report load")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="length of each timed load, per encoding")
    parser.add_argument("--interval", type=float, default=1.0, help="fan-out poll interval, s")
    parser.add_argument("--concurrency", type=int, default=50, help="registrations in flight")
    parser.add_argument("--runs", type=int, default=5, help="runs per VTN and setup (ABBA)")
    parser.add_argument("--setup", choices=(*SETUPS, "both"), default="both",
                        help="the runtime of both VTNs (tuned: uvloop + serving tuning)")
    parser.add_argument("--no-repeat-cache", action="store_true",
                        help="turn our repeat cache off (every request decoded afresh)")
    parser.add_argument("--no-fanout", action="store_true", help="skip the fan-out")
    parser.add_argument("--storage", choices=("sqlite", "postgresql"), default="sqlite",
                        help="our database: a SQLite file, or a PostgreSQL database per run")
    parser.add_argument("--postgres-url", default=DEFAULT_ADMIN_URL,
                        help="PostgreSQL server (on this machine) and a database to connect to"
                             " to create and drop the runs' own")
    parser.add_argument("--store-vens", type=int, default=20,
                        help="writers in the storage measurement")
    parser.add_argument("--store-points", type=int, default=10,
                        help="points per report in the storage measurement")
    parser.add_argument("--ours-only", action="store_true", help="leave openleadr out")
    parser.add_argument("--signed-vens", type=int, default=10, help="RSA-2048 VENs, signed poll")
    parser.add_argument("--signed-polls", type=int, default=300, help="polls per signed run")
    parser.add_argument("--signed-runs", type=int, default=3, help="signed runs per VTN")
    parser.add_argument("--no-signed", action="store_true", help="skip the signed polls")
    parser.add_argument("--registration-only", action="store_true",
                        help="only the registration step (and the handshake floor)")
    parser.add_argument("--signed-only", action="store_true", help="only the signed polls")
    parser.add_argument("--cprofile", action="store_true",
                        help="cProfile our VTN during the poll and report loads and print it")
    args = parser.parse_args(argv)
    if args.signed_only and (args.no_signed or args.registration_only):
        parser.error("--signed-only excludes --no-signed and --registration-only")
    args.no_signed = args.no_signed or args.registration_only
    if min(args.vens, args.poll_vens, args.report_vens, args.signed_vens, args.runs,
           args.signed_runs) < 1:
        parser.error("VEN and run counts must be positive")
    args.poll_vens = min(args.poll_vens, args.vens)
    args.report_vens = min(args.report_vens, args.vens)
    args.store_vens = min(args.store_vens, args.vens)
    warnings.simplefilter("ignore")
    from bench._handshake import handshake_cpu_s
    from bench._vtn_tables import render

    vtn_cpu, load_cpu = _cores()
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    setups = SETUPS if args.setup == "both" else (args.setup,)
    started, load_before = time.perf_counter(), os.getloadavg()
    results: dict[str, list[RunResult]] = {}
    with tempfile.TemporaryDirectory(prefix="crowdflex-bench-vtn-") as name:
        tmp = Path(name)
        pki = mint(tmp, vens=0 if args.signed_only else args.vens,
                   rsa_vens=0 if args.no_signed else args.signed_vens)
        for setup in setups:
            runs = results.setdefault(setup, [])
            if not args.signed_only:
                runs += _repeat(run_kind, setup, pki, args, vtn_cpu, tmp, args.runs)
            if not args.no_signed:
                runs += _repeat(run_signed, setup, pki, args, vtn_cpu, tmp, args.signed_runs)
        key_loading = None if args.no_signed else openleadr_key_loading_s(pki)
        handshake = None if args.signed_only else handshake_cpu_s(
            cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca, ven_cert=pki.vens[0].cert,
            ven_key=pki.vens[0].key)
    print(render(args, results, pinned=vtn_cpu is not None, load_before=load_before,
                 load_after=os.getloadavg(), key_loading_s=key_loading, handshake_s=handshake))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


def _repeat(work: Callable[..., Any], setup: str, pki: Pki, args: argparse.Namespace,
            cpu: int | None, tmp: Path, runs: int) -> list[RunResult]:
    out = []
    for run, order in enumerate(abba(runs)):
        for kind in order:
            if kind == "ours" or not args.ours_only:
                out.append(asyncio.run(work(kind, setup, pki, args, cpu, tmp, run)))
    return out
