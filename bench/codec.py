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

Each side runs in a fresh worker process of its own, as each node would: importing openleadr (its
client and server, which its package imports) makes our decode cost about twice the instructions
in the same process, so no process holds both codecs. A run starts one worker per side; the
parent drives both through pipes, row by row: each worker sizes its batch to about 20 ms, then
the parent asks for ``--samples`` batches from each, alternating (ours, openleadr, openleadr,
ours, ...; the other way round in every second run), so each pair of batches is taken
milliseconds apart and a pair's ratio (openleadr's CPU time per call over ours,
``time.process_time_ns`` in each worker) sees the same moment of the machine's load. Every
figure pools the pairs of ``--runs`` runs: the median with the range, and per row the range of
the runs' own medians.
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import IO, Any

from ._codec_messages import PAYLOADS, UNWRITABLE, openleadr_message

TARGET = 5.0
DECODE_TARGET_8X = frozenset({"oadrUpdateReport", "oadrDistributeEvent", "oadrRegisterReport"})
SIGN_TARGET_NS = 2_000_000
SIDES = ("ours", "openleadr")
BATCH_MS = 20.0
_SIGN_ROW = ("sign+encode", "oadrPoll, RSA-2048")
_KEY_ROW = ("key loading", "openleadr: the PEM key loaded twice per message")


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One figure a worker can time: ``batch(n)`` makes what its n calls need (fresh objects),
    then returns the CPU time per call of the n calls."""

    operation: str
    message: str
    batch: Callable[[int], float]
    note: str = ""


def _calls(call: Callable[[], object], n: int) -> float:
    start = time.process_time_ns()
    for _ in range(n):
        call()
    return (time.process_time_ns() - start) / n


def _fresh_calls(make: Callable[[], Any], call: Callable[[Any], object], n: int) -> float:
    pool = [make() for _ in range(n)]
    start = time.process_time_ns()
    for obj in pool:
        call(obj)
    return (time.process_time_ns() - start) / n


def batch_size(row: Row, batch_ms: float = BATCH_MS) -> int:
    """Calls per batch of about ``batch_ms``, after a warm-up of 20 calls."""
    row.batch(20)
    return max(1, int(batch_ms * 1e6 / max(row.batch(1), 1.0)))


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


def ours_rows(messages: dict[str, bytes], *, sign: bool) -> list[Row]:
    """Our decode and encode of every message, and our RSA-2048 signing of an oadrPoll."""
    import schemas

    codec = schemas.default_codec()
    out: list[Row] = []
    for kind, data in messages.items():
        out.append(Row(operation="decode", message=kind,
                       batch=partial(_calls, partial(codec.decode, data))))
        out.append(Row(operation="encode", message=kind,
                       batch=partial(_fresh_calls, partial(codec.decode, data), codec.encode)))
    if sign:
        key_pem, cert_pem = _rsa_2048()
        signing = schemas.Codec(signer=schemas.Signer(key_pem, cert_pem))
        poll = schemas.Poll(ven_id="agg-flexcrowd-01")
        out.append(Row(operation=_SIGN_ROW[0], message=_SIGN_ROW[1],
                       batch=partial(_calls, partial(signing.encode, poll))))
    return out


def _openleadr_decoder() -> Callable[[bytes], Any]:
    """What an openleadr node does with a body: XSD-validate it, then parse it to a dict. Its
    functions are imported here, once, so no import statement runs inside its timed calls."""
    from openleadr.messaging import parse_message, validate_xml_schema

    def decode(data: bytes) -> Any:
        validate_xml_schema(data)
        return parse_message(data)

    return decode


def _alone_us(call: Callable[[], object]) -> float:
    row = Row(operation="", message="", batch=partial(_calls, call))
    per_batch = batch_size(row)
    return statistics.median(row.batch(per_batch) for _ in range(5)) / 1000


def openleadr_rows(messages: dict[str, bytes], *, sign: bool, detail: bool) -> list[Row]:
    """openleadr's validate + parse of every message, its ``create_message`` from the dict its
    ``parse_message`` returned, and its RSA-2048 signing of an oadrPoll with the key loading
    timed alone."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from openleadr.messaging import create_message, parse_message

    openleadr_decode = _openleadr_decoder()
    out: list[Row] = []
    for kind, data in messages.items():
        note = ""
        if detail:
            alone = _alone_us(partial(parse_message, data))
            note = f"openleadr parse_message alone (no XSD): {alone:.1f} us"
        out.append(Row(operation="decode", message=kind, note=note,
                       batch=partial(_calls, partial(openleadr_decode, data))))
        _, payload = parse_message(data)
        out.append(Row(operation="encode", message=kind,
                       batch=partial(_calls, partial(create_message, kind, **payload))))
    if sign:
        key_pem, cert_pem = _rsa_2048()
        out.append(Row(operation=_SIGN_ROW[0], message=_SIGN_ROW[1], batch=partial(
            _calls, lambda: create_message("oadrPoll", cert=cert_pem, key=key_pem,
                                           ven_id="agg-flexcrowd-01"))))
        out.append(Row(operation=_KEY_ROW[0], message=_KEY_ROW[1], batch=partial(
            _calls, lambda: (load_pem_private_key(key_pem, None),
                             load_pem_private_key(key_pem, None))),
            note="timed alone; each openleadr signing above includes it (RSA key loading checks"
                 " the key, and its cost varies from run to run)"))
    return out


def serve(rows: list[Row], commands: IO[str], replies: IO[str]) -> None:
    """A worker's loop: first the rows it can time, one JSON line; then per command line
    ``{"row": i, "size": true}`` the batch size of row i (warmed up, garbage collected), and per
    ``{"row": i, "calls": n}`` the CPU ns per call of n calls of row i; until end of input."""
    print(json.dumps([[row.operation, row.message, row.note] for row in rows]), file=replies,
          flush=True)
    for line in commands:
        command = json.loads(line)
        row = rows[command["row"]]
        if command.get("size"):
            answer: float = batch_size(row)
            gc.collect()
        else:
            answer = row.batch(command["calls"])
        print(json.dumps(answer), file=replies, flush=True)


def _verdict(operation: str, kind: str, ratio: float) -> str:
    target = 8.0 if operation == "decode" and kind in DECODE_TARGET_8X else TARGET
    return f"{'met' if ratio >= target else 'MISSED'} (>= {target:g}x)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One row: each side's CPU ns per call, sample by sample (pairs taken together), and the
    run each pair came from; ours is NaN where our side has no such row."""

    operation: str
    message: str
    ours_ns: tuple[float, ...]
    theirs_ns: tuple[float, ...]
    runs: tuple[int, ...]
    note: str = ""

    @property
    def ratios(self) -> tuple[float, ...]:
        """openleadr's figure over ours, pair by pair."""
        return tuple(t / o for o, t in zip(self.ours_ns, self.theirs_ns, strict=True))

    @property
    def run_ratios(self) -> tuple[float, ...]:
        """The median pair ratio of each run."""
        by_run: dict[int, list[float]] = {}
        for run, ratio in zip(self.runs, self.ratios, strict=True):
            by_run.setdefault(run, []).append(ratio)
        return tuple(statistics.median(ratios) for ratios in by_run.values())


class _Worker:
    """One side's worker process, driven line by line over its pipes."""

    def __init__(self, side: str, argv: list[str], messages: dict[str, bytes]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench", "codec", *argv, "--side", side],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in, self._out = self.process.stdin, self.process.stdout
        self._in.write(json.dumps({k: v.decode() for k, v in messages.items()}) + "\n")
        self._in.flush()
        self.rows = {(op, message): (i, note)
                     for i, (op, message, note) in enumerate(json.loads(self._out.readline()))}

    def ask(self, **command: Any) -> Any:
        self._in.write(json.dumps(command) + "\n")
        self._in.flush()
        return json.loads(self._out.readline())

    def close(self) -> None:
        self._in.close()
        if self.process.wait() != 0:
            raise RuntimeError(f"codec worker exited with {self.process.returncode}")


def _paired(ours: _Worker | None, theirs: _Worker, key: tuple[str, str], samples: int,
            ours_first: bool) -> Iterator[tuple[float, float]]:
    """``samples`` pairs of one row, the two workers' batches alternated ABBA."""
    sides = [(theirs, *theirs.rows[key])]
    if ours is not None:
        sides.insert(0, (ours, *ours.rows[key]))
    sizes = {id(worker): worker.ask(row=row, size=True) for worker, row, _ in sides}
    for index in range(samples):
        order = sides if (index % 4 in (0, 3)) == ours_first else sides[::-1]
        ns = {id(worker): worker.ask(row=row, calls=sizes[id(worker)])
              for worker, row, _ in order}
        yield (ns[id(ours)] if ours is not None else math.nan), ns[id(theirs)]


def paired_runs(argv: list[str], messages: dict[str, bytes], *, samples: int,
                runs: int) -> list[Figure]:
    """Every row openleadr's worker has (ours where we have it), over ``runs`` pairs of fresh
    workers, ``samples`` pairs of batches per row and run."""
    pairs: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    notes: dict[tuple[str, str], str] = {}
    for run in range(runs):
        with ExitStack() as stack:
            workers = {side: _Worker(side, argv, messages) for side in SIDES}
            for worker in workers.values():
                stack.callback(worker.close)
            for key, (_, note) in workers["openleadr"].rows.items():
                notes[key] = note
                ours = workers["ours"] if key in workers["ours"].rows else None
                pairs.setdefault(key, []).extend(
                    (run, mine, theirs) for mine, theirs in
                    _paired(ours, workers["openleadr"], key, samples, run % 2 == 0))
    return [Figure(operation=op, message=message, runs=tuple(p[0] for p in taken),
                   ours_ns=tuple(p[1] for p in taken), theirs_ns=tuple(p[2] for p in taken),
                   note=notes[(op, message)])
            for (op, message), taken in pairs.items()]


def _spread(values: tuple[float, ...], scale: float, unit: str, digits: int = 1) -> str:
    middle = f"{statistics.median(values) / scale:.{digits}f}{unit}"
    if len(values) < 2:
        return middle
    return f"{middle} ({min(values) / scale:.{digits}f}-{max(values) / scale:.{digits}f})"


def render(figures: list[Figure], sizes: dict[str, int]) -> str:
    """A table per payload type (rows decode and encode), then the signing rows."""
    head = (f"{'operation':<12} {'ours us':>20} {'openleadr us':>22} {'ratio (pairs)':>22}"
            f" {'run medians':>14}  target")
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
        run_ratios = "" if unpaired else (f"{min(figure.run_ratios):.2f}-"
                                          f"{max(figure.run_ratios):.2f}x")
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
                     f" {ratio:>22} {run_ratios:>14}  {verdict}")
        if note:
            lines.append(f"{'':<13}{note}")
    return "\n".join(lines)


def _side_rows(args: argparse.Namespace, messages: dict[str, bytes]) -> list[Row]:
    if args.side == "ours":
        return ours_rows(messages, sign=not args.no_sign)
    return openleadr_rows(messages, sign=not args.no_sign, detail=args.detail)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench codec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=11,
                        help="pairs of timed batches per figure and run")
    parser.add_argument("--runs", type=int, default=5, help="runs, fresh workers per side")
    parser.add_argument("--no-sign", action="store_true", help="skip the RSA-2048 signing rows")
    parser.add_argument("--detail", action="store_true",
                        help="also time openleadr's parse_message alone (no XSD) per type")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # a worker, over pipes
    args = parser.parse_args(argv)
    if args.samples < 1 or args.runs < 1:
        parser.error("--samples and --runs must be positive")
    warnings.simplefilter("ignore")  # openleadr's deprecation chatter would bury the table
    if args.side is not None:
        messages = {kind: text.encode() for kind, text in json.loads(sys.stdin.readline()).items()}
        serve(_side_rows(args, messages), sys.stdin, sys.stdout)
        return 0
    load_before = load_average()
    messages = {kind: openleadr_message(kind) for kind in PAYLOADS}
    child_argv = [*(["--no-sign"] if args.no_sign else []), *(["--detail"] if args.detail else [])]
    figures = paired_runs(child_argv, messages, samples=args.samples, runs=args.runs)
    print(f"CPU time per message: {args.runs} runs, each a fresh worker per side; per row and run"
          f" {args.samples} pairs of ~{BATCH_MS:g} ms batches, the two workers alternated ABBA;"
          " median over every pair (range); ratio = openleadr / ours per pair; run medians ="
          f" the range of the runs' median ratios; load average {load_before} before,"
          f" {load_average()} after")
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
