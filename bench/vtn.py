"""VTN benchmark: the crowdflex VTN against openleadr 0.5.36's OpenADRServer, same machine.

Each VTN runs in a process of its own (``bench._vtn_server``), pinned to one core when the machine
has two or more, on 127.0.0.1 with a free port and real mutual TLS (EC P-256 certificates minted
for this run in a temporary directory and deleted after it). This process is the load generator
(``bench._vtn_load``: one client certificate per VEN), pinned to another core. Ours stores in a
SQLite file (in that temporary directory); openleadr keeps everything in memory. Workloads, in
order:

1. registration: ``--vens`` VENs send oadrCreatePartyRegistration, each on a new mTLS connection,
   ``--concurrency`` at a time (wall time, registrations/s);
2. oadrPoll throughput: ``--poll-vens`` VENs post pre-encoded oadrPoll bytes back to back on
   keep-alive connections for ``--seconds`` (polls/s, and VTN CPU per poll);
3. oadrUpdateReport throughput: ``--report-vens`` VENs post 10-point TELEMETRY_USAGE reports,
   every point new (reports/s, VTN CPU per report);
4. fan-out: all ``--vens`` VENs poll every ``--interval`` s on random phases; one event is
   published to all; the VTN process times publish -> every VEN's oadrCreatedEvent stored
   (and its CPU meanwhile beyond the empty polls', per VEN);
5. signed poll: ``--signed-vens`` VENs with RSA-2048 certificates post ``--signed-polls`` polls,
   unsigned and then signed, every body signed before the clock starts (ours with
   ``Codec(signer=RSA-2048, verifier=CA)`` and durable nonces; openleadr signing its replies with
   the same RSA-2048 key but not verifying: with verification on it refused 982 of 1,000 of our
   VENs' polls): VTN CPU per poll from ``time.process_time`` in the VTN process, which counts
   every thread of it (``--signed-only`` runs this workload alone). Then, on ours, the signature
   CPU bomb of security review 2 (finding 1): one VEN sends ``HOSTILE`` 663 KB payloads whose
   SignedInfo holds 1,000 references to one 400 KB ds:Object, every digest and the value correct
   (``tests.fuzz.signing.reference_bomb``); VTN CPU per hostile request (before the fix: ~3.4 s).

The targets are printed beside the figures; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import schemas
from bench._vtn_load import (
    Control,
    LoadResult,
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
from bench._vtn_server import ServerSpec, serve

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
    from cbp.pki import CertificateAuthority, KeyType, Role

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


@dataclass(frozen=True, slots=True, kw_only=True)
class KindResult:
    registration_s: float
    registered: int
    polls: LoadResult
    poll_cpu_s: float
    reports: LoadResult
    report_cpu_s: float
    points_seen: int
    fanout_publish_s: float
    fanout_all_acks_s: float
    fanout_acks: int
    fanout_cpu_s: float
    errors: tuple[str, ...]
    profile: str = ""


async def _cpu_of(control: Control, work: Any) -> tuple[Any, float]:
    before = await control.call("cpu")
    result = await work
    return result, await control.call("cpu") - before


async def run_kind(kind: str, pki: Pki, args: argparse.Namespace, cpu: int | None,
                   tmp: Path) -> KindResult:
    spec = ServerSpec(kind=kind, cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca,
                      db=tmp / f"{kind}-vtn.db", poll_frequency_s=args.interval)
    with VtnProcess(spec, cpu) as vtn:
        vens = open_vens(list(pki.vens), pki.ca, vtn.port)
        try:
            registration_s = await register_all(vens, args.concurrency)
            await drain(vens)
            profile = args.profile and kind == "ours"
            if profile:
                await vtn.control.call("profile", True)
            polls, poll_cpu = await _cpu_of(vtn.control,
                                            poll_load(vens[: args.poll_vens], args.seconds))
            reports, report_cpu = await _cpu_of(
                vtn.control, report_load(vens[: args.report_vens], args.seconds))
            text = await vtn.control.call("profile", False) if profile else ""
            counts = await vtn.control.call("counts")
            publish_s, all_acks_s, acks, fanout_cpu_s = await fanout(
                vens, vtn.control, args.interval, settle_s=args.interval * 2)
        finally:
            await close_vens(vens)
    return KindResult(
        registration_s=registration_s, registered=sum(1 for v in vens if v.ven_id),
        polls=polls, poll_cpu_s=poll_cpu, reports=reports, report_cpu_s=report_cpu,
        points_seen=int(counts["points"]), fanout_publish_s=publish_s,
        fanout_all_acks_s=all_acks_s, fanout_acks=acks, fanout_cpu_s=fanout_cpu_s,
        errors=tuple(e for v in vens for e in v.errors[:3])[:10], profile=text or "")


async def _hostile_cpu(vtn: VtnProcess, ven: Any) -> float:
    """VTN CPU seconds per reference bomb from ``ven`` (fewer than its failure budget allows)."""
    from tests.fuzz.signing import reference_bomb

    signer = schemas.Signer(ven.identity.key.read_bytes(), ven.identity.cert.read_bytes())
    bombs = [reference_bomb(ven.encode(schemas.Poll(ven_id=ven.ven_id)), signer)
             for _ in range(HOSTILE)]

    async def send() -> None:
        for bomb in bombs:
            await ven.post("OadrPoll", bomb)

    _, cpu_s = await _cpu_of(vtn.control, send())
    return cpu_s / HOSTILE


async def run_signed(kind: str, signed: bool, pki: Pki, args: argparse.Namespace,
                     cpu: int | None, tmp: Path) -> tuple[LoadResult, float, float | None]:
    """Poll load from RSA-2048 VENs; (load, VTN CPU seconds per poll, and on ours signed, per
    hostile request). With ``--signed-only --profile`` our signed run is profiled and the profile
    printed."""
    spec = ServerSpec(kind=kind, cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca,
                      db=tmp / f"{kind}-{'signed' if signed else 'plain'}.db",
                      sign_cert=pki.signing_cert if signed else None,
                      sign_key=pki.signing_key if signed else None)
    with VtnProcess(spec, cpu) as vtn:
        vens = open_vens(list(pki.rsa_vens), pki.ca, vtn.port, sign=signed)
        try:
            await register_all(vens, args.concurrency)
            await drain(vens)
            profile = args.profile and args.signed_only and signed and kind == "ours"
            if profile:
                await vtn.control.call("profile", True)
            load, cpu_s = await _cpu_of(vtn.control, signed_poll_load(vens, args.signed_polls))
            if profile:
                print("cProfile of our VTN, signed polls (event-loop thread only):\n"
                      + await vtn.control.call("profile", False))
            hostile = await _hostile_cpu(vtn, vens[0]) if signed and kind == "ours" else None
        finally:
            await close_vens(vens)
    return load, cpu_s / max(load.count, 1), hostile


def _cores() -> tuple[int | None, int | None]:
    """(VTN core, load core): different cores when there are two or more."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    return (available[-1], available[0]) if len(available) >= 2 else (None, None)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench vtn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vens", type=int, default=500, help="VENs registered and fanned out to")
    parser.add_argument("--poll-vens", type=int, default=100, help="VENs in the poll load")
    parser.add_argument("--report-vens", type=int, default=100, help="VENs in the report load")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each timed load")
    parser.add_argument("--interval", type=float, default=1.0, help="fan-out poll interval, s")
    parser.add_argument("--concurrency", type=int, default=50, help="registrations in flight")
    parser.add_argument("--signed-vens", type=int, default=10, help="RSA-2048 VENs, signed poll")
    parser.add_argument("--signed-polls", type=int, default=600, help="polls per signed run")
    parser.add_argument("--only", choices=KINDS, help="run one VTN only")
    parser.add_argument("--no-signed", action="store_true", help="skip workload 5")
    parser.add_argument("--signed-only", action="store_true", help="run workload 5 only")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile our VTN during the poll and report loads (with"
                        " --signed-only: during the signed polls) and print it")
    args = parser.parse_args(argv)
    if args.signed_only and args.no_signed:
        parser.error("--signed-only and --no-signed exclude each other")
    if min(args.vens, args.poll_vens, args.report_vens, args.signed_vens) < 1:
        parser.error("VEN counts must be positive")
    args.poll_vens, args.report_vens = min(args.poll_vens, args.vens), min(args.report_vens,
                                                                           args.vens)
    warnings.simplefilter("ignore")
    from bench._vtn_report import render

    vtn_cpu, load_cpu = _cores()
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    kinds = (args.only,) if args.only else KINDS
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crowdflex-bench-vtn-") as name:
        tmp = Path(name)
        pki = mint(tmp, vens=0 if args.signed_only else args.vens,
                   rsa_vens=0 if args.no_signed else args.signed_vens)
        results = {} if args.signed_only else {
            kind: asyncio.run(run_kind(kind, pki, args, vtn_cpu, tmp)) for kind in kinds}
        signed: dict[tuple[str, bool], tuple[LoadResult, float, float | None]] = {}
        if not args.no_signed:
            for kind in kinds:
                for sign in (False, True):
                    signed[kind, sign] = asyncio.run(run_signed(kind, sign, pki, args, vtn_cpu,
                                                                tmp))
    print(render(args, results, signed, pinned=vtn_cpu is not None))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs and not math.isnan(theirs) else math.nan
