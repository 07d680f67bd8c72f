"""Codec benchmark: crowdflex ``schemas`` against openleadr 0.5.36, every payload type.

The messages are openleadr's own: each payload type of the bundled conformance corpus
(schemas/conformance/corpus/valid) is read by openleadr's ``parse_message`` and written again by
its ``create_message``, and those bytes are what both sides decode. (The corpus files do not carry
every optional field of every type; the rows say which message each type is.)

- decode: ``schemas.decode`` (hardened parse + XSD validation + typed message) against what an
  openleadr node does per message: ``validate_xml_schema`` (lxml + XSD) and ``parse_message``
  (xmltodict + normalisation). ``parse_message`` alone does not validate: ``--detail`` prints it.
- encode: ``schemas.encode`` of a *fresh* message object per call (decoded before the clock from
  the same bytes, one object per call: no object is encoded twice, so no per-object cache hits)
  against ``create_message`` fed with the dict openleadr's own ``parse_message`` returned.
- sign: an RSA-2048 key made in memory for this run (never written to disk); ours is
  ``Codec(signer=Signer(...)).encode`` of a Poll, openleadr's ``create_message(cert=, key=)``,
  which loads the PEM key twice per message; that loading is timed alone on a line of its own.

Each figure is the median over ``--samples`` batches of this process's CPU time
(``time.process_time_ns``: on a shared machine wall time also counts the other processes' turns)
per call, after a warm-up, both sides' batches alternating. Targets are printed beside the figures
(every type >= 5x both ways; oadrUpdateReport, oadrDistributeEvent and oadrRegisterReport decode
>= 8x); nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import schemas
from schemas.conformance import corpus_dir

# One corpus file per payload type (oadrCreateOpt: the event opt, which openleadr can write back).
CORPUS_FILES = (
    "oadrCancelOpt.xml", "oadrCancelPartyRegistration.xml", "oadrCancelReport.xml",
    "oadrCanceledOpt.xml", "oadrCanceledPartyRegistration.xml", "oadrCanceledReport.xml",
    "oadrCreateOpt_event_opt_out.xml", "oadrCreatePartyRegistration.xml",
    "oadrCreateReport.xml", "oadrCreatedEvent.xml", "oadrCreatedOpt.xml",
    "oadrCreatedPartyRegistration.xml", "oadrCreatedReport.xml", "oadrDistributeEvent.xml",
    "oadrPoll.xml", "oadrQueryRegistration.xml", "oadrRegisterReport.xml",
    "oadrRegisteredReport.xml", "oadrRequestEvent.xml", "oadrRequestReregistration.xml",
    "oadrResponse.xml", "oadrUpdateReport.xml", "oadrUpdatedReport.xml",
)  # fmt: skip
TARGET = 5.0
DECODE_TARGET_8X = frozenset({"oadrUpdateReport", "oadrDistributeEvent", "oadrRegisterReport"})
SIGN_TARGET_NS = 2_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    operation: str
    message: str
    ours_ns: float
    theirs_ns: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.theirs_ns / self.ours_ns


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


def median_ns(call: Callable[[], object], *, samples: int, batch_ms: float = 20.0) -> float:
    """Median time per call: warm up, size a batch to ~batch_ms, then time ``samples`` batches."""
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


def paired_medians(ours: Callable[[], object], theirs: Callable[[], object], *, samples: int,
                   batch_ms: float = 20.0, ours_batch: int | None = None) -> tuple[float, float]:
    """Medians per call of both sides, their batches alternating, so a change in machine load
    during the run weighs on both figures alike instead of skewing the ratio."""
    if ours_batch is None:
        ours_batch = _batch_size(ours, batch_ms)
    theirs_batch = _batch_size(theirs, batch_ms)
    gc.collect()
    ours_times, theirs_times = [], []
    for _ in range(samples):
        ours_times.append(_time_batch(ours, ours_batch))
        theirs_times.append(_time_batch(theirs, theirs_batch))
    return statistics.median(ours_times), statistics.median(theirs_times)


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


def _openleadr_decoder() -> Callable[[bytes], Any]:
    """What an openleadr node does with a body: XSD-validate it, then parse it to a dict. Its
    functions are imported here, once, so no import statement runs inside its timed calls."""
    from openleadr.messaging import parse_message, validate_xml_schema

    def decode(data: bytes) -> Any:
        validate_xml_schema(data)
        return parse_message(data)

    return decode


def openleadr_messages() -> list[tuple[str, bytes]]:
    """(payload type, bytes) per payload type, as openleadr writes each corpus message."""
    from openleadr.messaging import create_message, parse_message

    out = []
    for file in CORPUS_FILES:
        kind, payload = parse_message((corpus_dir() / "valid" / file).read_bytes())
        written = create_message(kind, **payload)
        out.append((kind, written.encode() if isinstance(written, str) else written))
    return out


def _verdict(operation: str, kind: str, ratio: float) -> str:
    target = 8.0 if operation == "decode" and kind in DECODE_TARGET_8X else TARGET
    return f"{'met' if ratio >= target else 'MISSED'} (>= {target:g}x)"


def codec_rows(samples: int, *, detail: bool = False) -> list[Row]:
    from openleadr.messaging import create_message, parse_message

    codec = schemas.default_codec()
    openleadr_decode = _openleadr_decoder()
    rows: list[Row] = []
    for kind, data in openleadr_messages():
        _, payload = parse_message(data)
        ours, theirs = paired_medians(
            partial(codec.decode, data), partial(openleadr_decode, data), samples=samples)
        note = ""
        if detail:
            alone = median_ns(partial(parse_message, data), samples=samples)
            note = f"openleadr parse_message alone (no XSD): {alone / 1000:.1f} us"
        rows.append(Row(operation="decode", message=kind, ours_ns=ours, theirs_ns=theirs,
                        note=note))
        encode_fresh, per_batch = fresh_calls(partial(codec.decode, data), codec.encode,
                                              samples=samples + 1)
        ours, theirs = paired_medians(encode_fresh, partial(create_message, kind, **payload),
                                      samples=samples, ours_batch=per_batch)
        rows.append(Row(operation="encode", message=kind, ours_ns=ours, theirs_ns=theirs))
    return rows


def signing_rows(samples: int) -> list[Row]:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from openleadr.messaging import create_message

    key_pem, cert_pem = _rsa_2048()
    signing = schemas.Codec(signer=schemas.Signer(key_pem, cert_pem))
    poll = schemas.Poll(ven_id="agg-flexcrowd-01")
    ours, theirs = paired_medians(
        lambda: signing.encode(poll),
        lambda: create_message("oadrPoll", cert=cert_pem, key=key_pem, ven_id="agg-flexcrowd-01"),
        samples=samples,
    )
    loading = median_ns(lambda: (load_pem_private_key(key_pem, None),
                                 load_pem_private_key(key_pem, None)), samples=samples)
    verdict = "under" if ours < SIGN_TARGET_NS else "over"
    return [
        Row(operation="sign+encode", message="oadrPoll, RSA-2048", ours_ns=ours,
            theirs_ns=theirs,
            note=f"target < 2 ms per message: ours {ours / 1e6:.3f} ms ({verdict})"),
        Row(operation="key loading", message="openleadr: the PEM key loaded twice per message",
            ours_ns=math.nan, theirs_ns=loading,
            note="timed alone; each openleadr signing above includes it (RSA key loading checks"
                 " the key, and its cost varies from run to run)"),
    ]


def render(rows: list[Row]) -> str:
    head = f"{'operation':<12} {'message':<32} {'ours':>11} {'openleadr':>11} {'ratio':>8}  target"
    lines = [head, "-" * len(head)]
    for row in rows:
        ours = "" if math.isnan(row.ours_ns) else f"{row.ours_ns / 1000:>8.1f} us"
        ratio = "" if math.isnan(row.ours_ns) else f"{row.ratio:>7.1f}x"
        verdict = (_verdict(row.operation, row.message, row.ratio)
                   if row.operation in ("decode", "encode") else "")
        lines.append(f"{row.operation:<12} {row.message:<32} {ours:>11}"
                     f" {row.theirs_ns / 1000:>8.1f} us {ratio:>8}  {verdict}")
        if row.note:
            lines.append(f"{'':<13}{row.note}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench codec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=31, help="timed batches per figure")
    parser.add_argument("--no-sign", action="store_true", help="skip the RSA-2048 signing rows")
    parser.add_argument("--detail", action="store_true",
                        help="also time openleadr's parse_message alone (no XSD) per type")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be positive")
    warnings.simplefilter("ignore")  # openleadr's deprecation chatter would bury the table
    rows = codec_rows(args.samples, detail=args.detail)
    if not args.no_sign:
        rows += signing_rows(args.samples)
    print(f"median time per message, {args.samples} batches each; ratio = openleadr / ours;"
          f" load average {load_average()}")
    print(render(rows))
    missed = [f"{r.operation} {r.message}" for r in rows if r.operation in ("decode", "encode")
              and _verdict(r.operation, r.message, r.ratio).startswith("MISSED")]
    print(f"\n{len(missed)} of {sum(r.operation in ('decode', 'encode') for r in rows)} rows"
          " short of their target" + (": " + ", ".join(missed) if missed else ""))
    return 0


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
