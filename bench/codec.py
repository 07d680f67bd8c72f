"""Codec benchmark: crowdflex ``schemas`` against openleadr 0.5.36, every payload type.

The messages are openleadr's own: each of the 23 payload types written by its ``create_message``
with every optional field the 2.0b XSD allows and its template can write
(``bench/_codec_messages.py``, which also names what openleadr cannot write); both sides decode
those same bytes.

- decode: ``schemas.decode`` (hardened parse + XSD validation + typed message) against what an
  openleadr node does per message: ``validate_xml_schema`` (lxml + XSD) and ``parse_message``
  (xmltodict + normalisation). ``parse_message`` alone does not validate: ``--detail`` prints it.
- encode: ``schemas.encode`` of a *fresh* message object per call (decoded before the clock from
  the same bytes, one object per call: no object is encoded twice, so no per-object cache hits)
  against ``create_message`` fed with the dict openleadr's own ``parse_message`` returned.
- sign: an RSA-2048 key made in memory for this run (never written to disk); ours is
  ``Codec(signer=Signer(...)).encode`` of a Poll, openleadr's ``create_message(cert=, key=)``,
  which loads the PEM key twice per message; that loading is timed alone on a line of its own.

Each side runs in a fresh process of its own, as each node would: importing openleadr (its client
and server, which its package imports) makes our decode cost about twice the instructions in the
same process, so no process here holds both codecs. A run is one process per side, ours first in
runs 1, 4, 5, 8, ... and openleadr's first in the others (ABBA); the messages are written once by
the parent and handed to both. In a process every figure is the median over ``--samples``
batches of its CPU time (``time.process_time_ns``: on a shared machine wall time also counts the
other processes' turns) per call, after a warm-up. The table per payload type gives the median
over ``--runs`` runs with the range; a run's ratio is openleadr's figure over ours from the same
run, and the table's ratio is the median of those.
Targets are printed beside the figures (every type >= 5x both ways; oadrUpdateReport,
oadrDistributeEvent and oadrRegisterReport decode >= 8x); nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from ._codec_messages import PAYLOADS, UNWRITABLE, openleadr_message

TARGET = 5.0
DECODE_TARGET_8X = frozenset({"oadrUpdateReport", "oadrDistributeEvent", "oadrRegisterReport"})
SIGN_TARGET_NS = 2_000_000
SIDES = ("ours", "openleadr")
_SIGN_ROW = ("sign+encode", "oadrPoll, RSA-2048")
_KEY_ROW = ("key loading", "openleadr: the PEM key loaded twice per message")


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """One side's figure in one run: the median CPU time per call."""

    operation: str
    message: str
    ns: float
    note: str = ""


def _batch_size(call: Callable[[], object], batch_ms: float) -> int:
    for _ in range(20):
        call()
    start = time.process_time_ns()
    call()
    one = max(time.process_time_ns() - start, 1)
    return max(1, int(batch_ms * 1e6 / one))


def _time_batch(call: Callable[[], object], per_batch: int) -> float:
    start = time.process_time_ns()
    for _ in range(per_batch):
        call()
    return (time.process_time_ns() - start) / per_batch


def median_ns(call: Callable[[], object], *, samples: int, batch_ms: float = 20.0,
              per_batch: int | None = None) -> float:
    """Median time per call: warm up, size a batch to ~batch_ms (unless ``per_batch`` is given),
    then time ``samples`` batches."""
    if per_batch is None:
        per_batch = _batch_size(call, batch_ms)
    gc.collect()
    return statistics.median(_time_batch(call, per_batch) for _ in range(samples))


def fresh_calls(make: Callable[[], Any], call: Callable[[Any], object], *, samples: int,
                batch_ms: float = 20.0) -> tuple[Callable[[], object], int]:
    """``call`` over objects made by ``make`` before the clock, a new one per call: returns the
    timed function and its batch size (the pool holds one object per call of every batch)."""
    probe = [make() for _ in range(21)]
    for obj in probe[:-1]:
        call(obj)
    start = time.process_time_ns()
    call(probe[-1])
    per_batch = max(1, int(batch_ms * 1e6 / max(time.process_time_ns() - start, 1)))
    pool = iter([make() for _ in range(per_batch * samples)])
    return (lambda: call(next(pool))), per_batch


def _rsa_2048() -> tuple[bytes, bytes]:
    """A throwaway RSA-2048 key and self-signed certificate, PEM, for this process only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-ven")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def ours_timings(messages: dict[str, bytes], *, samples: int, sign: bool) -> list[Timing]:
    """Our decode and encode of every message, and our RSA-2048 signing of an oadrPoll."""
    import schemas

    codec = schemas.default_codec()
    out: list[Timing] = []
    for kind, data in messages.items():
        out.append(Timing(operation="decode", message=kind,
                          ns=median_ns(partial(codec.decode, data), samples=samples)))
        encode_fresh, per_batch = fresh_calls(partial(codec.decode, data), codec.encode,
                                              samples=samples + 1)
        out.append(Timing(operation="encode", message=kind,
                          ns=median_ns(encode_fresh, samples=samples, per_batch=per_batch)))
    if sign:
        key_pem, cert_pem = _rsa_2048()
        signing = schemas.Codec(signer=schemas.Signer(key_pem, cert_pem))
        poll = schemas.Poll(ven_id="agg-flexcrowd-01")
        out.append(Timing(operation=_SIGN_ROW[0], message=_SIGN_ROW[1],
                          ns=median_ns(lambda: signing.encode(poll), samples=samples)))
    return out


def _openleadr_decoder() -> Callable[[bytes], Any]:
    """What an openleadr node does with a body: XSD-validate it, then parse it to a dict. Its
    functions are imported here, once, so no import statement runs inside its timed calls."""
    from openleadr.messaging import parse_message, validate_xml_schema

    def decode(data: bytes) -> Any:
        validate_xml_schema(data)
        return parse_message(data)

    return decode


def openleadr_timings(messages: dict[str, bytes], *, samples: int, sign: bool,
                      detail: bool) -> list[Timing]:
    """openleadr's validate + parse of every message, its ``create_message`` from the dict its
    ``parse_message`` returned, and its RSA-2048 signing of an oadrPoll with the key loading
    timed alone."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from openleadr.messaging import create_message, parse_message

    openleadr_decode = _openleadr_decoder()
    out: list[Timing] = []
    for kind, data in messages.items():
        note = ""
        if detail:
            alone = median_ns(partial(parse_message, data), samples=samples)
            note = f"openleadr parse_message alone (no XSD): {alone / 1000:.1f} us"
        out.append(Timing(operation="decode", message=kind, note=note,
                          ns=median_ns(partial(openleadr_decode, data), samples=samples)))
        _, payload = parse_message(data)
        out.append(Timing(operation="encode", message=kind,
                          ns=median_ns(partial(create_message, kind, **payload),
                                       samples=samples)))
    if sign:
        key_pem, cert_pem = _rsa_2048()
        out.append(Timing(operation=_SIGN_ROW[0], message=_SIGN_ROW[1], ns=median_ns(
            lambda: create_message("oadrPoll", cert=cert_pem, key=key_pem,
                                   ven_id="agg-flexcrowd-01"), samples=samples)))
        out.append(Timing(operation=_KEY_ROW[0], message=_KEY_ROW[1], ns=median_ns(
            lambda: (load_pem_private_key(key_pem, None), load_pem_private_key(key_pem, None)),
            samples=samples), note="timed alone; each openleadr signing above includes it (RSA"
                                   " key loading checks the key, and its cost varies from run to"
                                   " run)"))
    return out


def _verdict(operation: str, kind: str, ratio: float) -> str:
    target = 8.0 if operation == "decode" and kind in DECODE_TARGET_8X else TARGET
    return f"{'met' if ratio >= target else 'MISSED'} (>= {target:g}x)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One row over the runs: each side's figure per run (NaN where a side has none)."""

    operation: str
    message: str
    ours_ns: tuple[float, ...]
    theirs_ns: tuple[float, ...]
    note: str = ""

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(t / o for o, t in zip(self.ours_ns, self.theirs_ns, strict=True))


def gather(ours: list[list[Timing]], theirs: list[list[Timing]]) -> list[Figure]:
    """Both sides' runs joined by (operation, message), in openleadr's order (it has every row)."""
    mine = [{(t.operation, t.message): t.ns for t in run} for run in ours]
    return [
        Figure(operation=timing.operation, message=timing.message,
               ours_ns=tuple(run.get((timing.operation, timing.message), math.nan)
                             for run in mine),
               theirs_ns=tuple(run[i].ns for run in theirs), note=timing.note)
        for i, timing in enumerate(theirs[0])
    ]


def _spread(values: tuple[float, ...], scale: float, unit: str, digits: int = 1) -> str:
    middle = f"{statistics.median(values) / scale:.{digits}f}{unit}"
    if len(values) < 2:
        return middle
    return f"{middle} ({min(values) / scale:.{digits}f}-{max(values) / scale:.{digits}f})"


def render(figures: list[Figure], sizes: dict[str, int]) -> str:
    """A table per payload type (rows decode and encode), then the signing rows."""
    head = f"{'operation':<12} {'ours us':>20} {'openleadr us':>22} {'ratio':>20}  target"
    lines: list[str] = []
    for figure in figures:
        if figure.operation == "decode":
            lines += ["", f"{figure.message} ({sizes[figure.message]:,} bytes)"]
            if figure.message in UNWRITABLE:
                lines.append(f"  openleadr cannot write: {UNWRITABLE[figure.message]}")
            lines += [head, "-" * len(head)]
        elif figure.operation == _SIGN_ROW[0]:
            lines += ["", head, "-" * len(head)]
        unpaired = math.isnan(figure.ours_ns[0])
        ours = "" if unpaired else _spread(figure.ours_ns, 1000, "")
        ratio = "" if unpaired else _spread(figure.ratios, 1, "x", 2)
        note, verdict = figure.note, ""
        if figure.operation in ("decode", "encode"):
            verdict = _verdict(figure.operation, figure.message,
                               statistics.median(figure.ratios))
            name = figure.operation
        else:
            name = f"{figure.operation}: {figure.message}"
        if figure.operation == _SIGN_ROW[0]:
            ms = statistics.median(figure.ours_ns) / 1e6
            note = (f"target < 2 ms per message: ours {ms:.3f} ms"
                    f" ({'under' if ms * 1e6 < SIGN_TARGET_NS else 'over'})")
        lines.append(f"{name:<12} {ours:>20} {_spread(figure.theirs_ns, 1000, ''):>22}"
                     f" {ratio:>20}  {verdict}")
        if note:
            lines.append(f"{'':<13}{note}")
    return "\n".join(lines)


def _fresh_process_run(side: str, argv: list[str], messages: dict[str, bytes]) -> list[Timing]:
    """One side's timings from a new process, the messages handed over on its stdin."""
    done = subprocess.run([sys.executable, "-m", "bench", "codec", *argv, "--side", side],
                          input=json.dumps({k: v.decode() for k, v in messages.items()}),
                          capture_output=True, text=True, check=True)
    return [Timing(**fields) for fields in json.loads(done.stdout)]


def _side_run(args: argparse.Namespace) -> list[Timing]:
    messages = {kind: text.encode() for kind, text in json.load(sys.stdin).items()}
    if args.side == "ours":
        return ours_timings(messages, samples=args.samples, sign=not args.no_sign)
    return openleadr_timings(messages, samples=args.samples, sign=not args.no_sign,
                             detail=args.detail)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench codec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=31, help="timed batches per figure")
    parser.add_argument("--runs", type=int, default=5, help="runs, a fresh process per side")
    parser.add_argument("--no-sign", action="store_true", help="skip the RSA-2048 signing rows")
    parser.add_argument("--detail", action="store_true",
                        help="also time openleadr's parse_message alone (no XSD) per type")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one side, JSON out
    args = parser.parse_args(argv)
    if args.samples < 1 or args.runs < 1:
        parser.error("--samples and --runs must be positive")
    warnings.simplefilter("ignore")  # openleadr's deprecation chatter would bury the table
    if args.side is not None:
        print(json.dumps([asdict(timing) for timing in _side_run(args)]))
        return 0
    load_before = load_average()
    messages = {kind: openleadr_message(kind) for kind in PAYLOADS}
    child_argv = ["--samples", str(args.samples), *(["--no-sign"] if args.no_sign else []),
                  *(["--detail"] if args.detail else [])]
    runs: dict[str, list[list[Timing]]] = {side: [] for side in SIDES}
    for index in range(args.runs):
        for side in SIDES if index % 4 in (0, 3) else reversed(SIDES):
            runs[side].append(_fresh_process_run(side, child_argv, messages))
    figures = gather(runs["ours"], runs["openleadr"])
    print(f"CPU time per message: per side and run a fresh process (runs {args.runs}, ABBA), in"
          f" it the median of {args.samples} batches; median over the runs (range); ratio ="
          f" openleadr / ours per run; load average {load_before} before, {load_average()}"
          " after")
    print(render(figures, {kind: len(data) for kind, data in messages.items()}))
    judged = [f for f in figures if f.operation in ("decode", "encode")]
    missed = [f"{f.operation} {f.message}" for f in judged
              if _verdict(f.operation, f.message, statistics.median(f.ratios)).startswith("MISSED")]
    print(f"\n{len(missed)} of {len(judged)} rows short of their target (by the median ratio)"
          + (": " + ", ".join(missed) if missed else ""))
    return 0


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
