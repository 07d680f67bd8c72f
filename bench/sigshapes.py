"""``python -m bench sigshapes``: verification CPU per hostile signed shape (signature red team).

What the VTN's signature check (``Codec.check_signature`` after parsing, as ``vtn.signing`` runs
it) costs for each shape the red-team pass on review 2 tried, beside honest payloads of the same
size: a namespace flood (declarations on oadrPayload, inclusive c14n), an attribute flood inside
ds:Signature, a carried "chain" of same-subject CAs with costly RSA keys, an id flood (1 MB, so
verified on a worker thread), and the dearest body within the bounds. Process CPU, best of a few
runs; prints figures, decides nothing. Before the fixes, on a 2-core machine: 303 ms for the
namespace flood, 129 ms for the attribute flood, 236 ms for the 4-CA mesh, 510 ms for the id
flood; after: under 1 ms each.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

import schemas
from devpki import CertificateAuthority, Role
from schemas import _dsig
from tests.fuzz.signing import (
    RawSigner,
    attribute_flood,
    id_flood,
    namespace_flood,
    rsa_with_big_exponent,
)

_REPEATS = 5


def _report(sender: schemas.Codec, intervals: int) -> bytes:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    report = schemas.Report(
        report_request_id="bench", report_specifier_id="bench", created_date_time=start,
        report_name=schemas.ReportName.TELEMETRY_USAGE, dtstart=start,
        intervals=tuple(schemas.ReportInterval(
            dtstart=start + timedelta(seconds=4 * i), duration=timedelta(seconds=4),
            payloads=(schemas.ReportPayload(r_id="meter", value=float(i)),))
            for i in range(intervals)))
    return sender.encode(schemas.UpdateReport(request_id="u", reports=(report,), ven_id="v"))


def _mesh(cas: int) -> bytes:
    """A poll signed by an untrusted key carrying ``cas`` self-issued CAs of one subject, each
    with a 2,046-bit RSA public exponent."""
    now = datetime.now(UTC)
    costly, leaf_key = rsa_with_big_exponent(), ec.generate_private_key(ec.SECP256R1())

    def certificate(subject: str, key: object, ca: bool) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "X")]))
            .public_key(key.public_key())  # type: ignore[attr-defined]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(costly, hashes.SHA256()))

    chain = (certificate("leaf", leaf_key, False),
             *(certificate("X", costly, True) for _ in range(cas)))
    root = schemas.Codec().build(schemas.Poll(ven_id="v"))
    _dsig.sign(root, RawSigner(leaf_key, chain), timestamp=now, nonce="mesh")
    return etree.tostring(root)


def _cost(codec: schemas.Codec, wire: bytes) -> tuple[float, str]:
    best, outcome = float("inf"), ""
    for _ in range(_REPEATS):
        root = codec.parse(wire)
        started = time.process_time()
        try:
            codec.check_signature(root)
            outcome = "verified"
        except schemas.SignatureInvalid as exc:
            outcome = "refused: " + exc.reason[:60]
        best = min(best, time.process_time() - started)
    return best, outcome


def main(argv: list[str]) -> int:
    authority = CertificateAuthority.create(common_name="bench CA")
    ven = authority.issue("bench-ven", Role.VEN)
    signer = schemas.Signer(ven.key_pem, ven.cert_pem)
    sender = schemas.Codec(signer=signer)
    # no replay memory: the same payload is checked several times
    receiver = schemas.Codec(verifier=schemas.Verifier(authority.cert_pem))
    receiver.replay = None
    poll = sender.encode(schemas.Poll(ven_id="v"))
    report = _report(sender, 175)
    shapes = {
        "honest signed poll": poll,
        "poll + 2,000 namespace declarations": namespace_flood(poll, signer, 2000),
        "poll + 6,000 attributes in a ds:Transform": attribute_flood(poll, signer, 6000),
        "poll carrying 4 same-subject costly-RSA CAs": _mesh(4),
        "poll + 17,000 Id/oadr:Id pairs in a ds:Object": id_flood(poll, signer, 17_000),
        "honest signed report (175 intervals)": report,
        "same + 17 declarations (32 in scope)": namespace_flood(report, signer, 17),
    }
    print(f"{'payload':46} {'bytes':>7} {'CPU ms':>8}  outcome")
    for label, wire in shapes.items():
        cpu, outcome = _cost(receiver, wire)
        print(f"{label:46} {len(wire):>7} {cpu * 1000:>8.1f}  {outcome}")
    return 0
