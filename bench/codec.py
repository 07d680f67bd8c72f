"""Codec benchmark: crowdflex ``schemas`` against openleadr 0.5.36 on the same OpenADR messages.

Messages come from the bundled conformance corpus (schemas/conformance/corpus/valid): oadrPoll,
oadrDistributeEvent (1 event, 4 intervals) and oadrUpdateReport (TELEMETRY_USAGE, 10 intervals).

- decode: ``schemas.decode`` (hardened parse + XSD validation + typed message) against what an
  openleadr node does per message: ``validate_xml_schema`` (lxml + XSD) and ``parse_message``
  (xmltodict + normalisation). ``parse_message`` alone does not validate, so both are timed.
- encode: ``schemas.encode`` of the decoded message against ``create_message`` fed with what
  openleadr's own ``parse_message`` returned for the same bytes.
- sign: an RSA-2048 key made in memory for this run (never written to disk); ours is
  ``Codec(signer=Signer(...)).encode`` of the Poll, openleadr's is ``create_message(cert=, key=)``.

Each figure is the median over ``--samples`` batches of wall time (``time.perf_counter_ns``) per
call, after a warm-up. The targets are printed beside the figures; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import gc
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

MESSAGES = (
    ("oadrPoll", "oadrPoll.xml"),
    ("oadrDistributeEvent (1 event, 4 intervals)", "oadrDistributeEvent.xml"),
    ("oadrUpdateReport (TELEMETRY_USAGE, 10 intervals)", "oadrUpdateReport.xml"),
)
TARGETS = {
    ("decode", "oadrUpdateReport (TELEMETRY_USAGE, 10 intervals)"): "target >= 8x faster",
    ("encode", "oadrUpdateReport (TELEMETRY_USAGE, 10 intervals)"): "target >= 5x faster",
}
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
    start = time.perf_counter_ns()
    call()
    one = max(time.perf_counter_ns() - start, 1)
    return max(1, int(batch_ms * 1e6 / one))


def _time_batch(call: Callable[[], object], per_batch: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(per_batch):
        call()
    return (time.perf_counter_ns() - start) / per_batch


def median_ns(call: Callable[[], object], *, samples: int, batch_ms: float = 20.0) -> float:
    """Median time per call: warm up, size a batch to ~batch_ms, then time ``samples`` batches."""
    per_batch = _batch_size(call, batch_ms)
    gc.collect()
    return statistics.median(_time_batch(call, per_batch) for _ in range(samples))


def paired_medians(ours: Callable[[], object], theirs: Callable[[], object], *, samples: int,
                   batch_ms: float = 20.0) -> tuple[float, float]:
    """Medians per call of both sides, their batches alternating, so a change in machine load
    during the run weighs on both figures alike instead of skewing the ratio."""
    ours_batch, theirs_batch = _batch_size(ours, batch_ms), _batch_size(theirs, batch_ms)
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


def _openleadr_decode(data: bytes) -> Any:
    """What an openleadr node does with a body: XSD-validate it, then parse it to a dict."""
    from openleadr.messaging import parse_message, validate_xml_schema

    validate_xml_schema(data)
    return parse_message(data)


def codec_rows(samples: int) -> list[Row]:
    from openleadr.messaging import create_message, parse_message

    codec = schemas.default_codec()
    rows: list[Row] = []
    for label, file in MESSAGES:
        data = (corpus_dir() / "valid" / file).read_bytes()
        message = codec.decode(data)
        kind, payload = parse_message(data)
        ours, theirs = paired_medians(
            partial(codec.decode, data), partial(_openleadr_decode, data), samples=samples
        )
        parse_only = median_ns(partial(parse_message, data), samples=samples)
        rows.append(
            Row(
                operation="decode",
                message=label,
                ours_ns=ours,
                theirs_ns=theirs,
                note=f"openleadr parse_message alone (no XSD): {parse_only / 1000:.1f} us",
            )
        )
        ours, theirs = paired_medians(
            partial(codec.encode, message), partial(create_message, kind, **payload),
            samples=samples,
        )
        rows.append(Row(operation="encode", message=label, ours_ns=ours, theirs_ns=theirs))
    return rows


def signing_row(samples: int) -> Row:
    from openleadr.messaging import create_message

    key_pem, cert_pem = _rsa_2048()
    signing = schemas.Codec(signer=schemas.Signer(key_pem, cert_pem))
    poll = schemas.Poll(ven_id="agg-flexcrowd-01")
    ours, theirs = paired_medians(
        lambda: signing.encode(poll),
        lambda: create_message("oadrPoll", cert=cert_pem, key=key_pem, ven_id="agg-flexcrowd-01"),
        samples=samples,
    )
    verdict = "under" if ours < SIGN_TARGET_NS else "over"
    return Row(
        operation="sign+encode",
        message="oadrPoll, RSA-2048",
        ours_ns=ours,
        theirs_ns=theirs,
        note=f"target < 2 ms per message: ours {ours / 1e6:.3f} ms ({verdict})",
    )


def render(rows: list[Row]) -> str:
    head = f"{'operation':<12} {'message':<50} {'ours':>11} {'openleadr':>11} {'ratio':>8}"
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(
            f"{row.operation:<12} {row.message:<50} {row.ours_ns / 1000:>8.1f} us"
            f" {row.theirs_ns / 1000:>8.1f} us {row.ratio:>7.1f}x"
        )
        target = TARGETS.get((row.operation, row.message))
        for extra in (target and f"{target}: measured {row.ratio:.1f}x", row.note):
            if extra:
                lines.append(f"{'':<13}{extra}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench codec", description=__doc__)
    parser.add_argument("--samples", type=int, default=31, help="timed batches per figure")
    parser.add_argument("--no-sign", action="store_true", help="skip the RSA-2048 signing rows")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # openleadr's deprecation chatter would bury the table
    rows = codec_rows(args.samples)
    if not args.no_sign:
        rows.append(signing_row(args.samples))
    print(f"median time per message, {args.samples} batches each; ratio = openleadr / ours")
    print(render(rows))
    return 0
