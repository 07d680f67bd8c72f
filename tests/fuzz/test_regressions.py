"""One test per bug the fuzzers found, each pinned to the smallest input that showed it.

Found by mutating the valid corpus (see test_decode_fuzz.py / test_signed_fuzz.py); each failed
the decode contract (a foreign exception escaped) or round-trip stability before its fix.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import schemas
from schemas._wire import format_datetime, parse_datetime, parse_duration
from tests.schemas.xsd_oracle import assert_xsd_valid

from .contract import assert_contract, seeds
from .signing import T0, identity, receiver

SEEDS = dict(seeds())


def _event_with(old: bytes, new: bytes) -> bytes:
    doc = SEEDS["oadrDistributeEvent"]
    assert old in doc
    return doc.replace(old, new, 1)


@pytest.mark.parametrize(
    "duration", [b"P1000000000D", b"PT99999999999999H", b"PT99999999999999999999S"]
)
def test_duration_past_timedelta_range_is_invalid_data(duration: bytes) -> None:
    # Was: OverflowError out of timedelta(), escaping decode.
    data = _event_with(
        b"<xcal:duration>PT1H</xcal:duration>", b"<xcal:duration>" + duration + b"</xcal:duration>"
    )
    with pytest.raises(schemas.InvalidData, match="duration out of range"):
        schemas.decode(data)


@pytest.mark.parametrize("number", [b"NaN", b"INF", b"-INF", b"1e400"])
def test_non_finite_signal_value_is_invalid_data(number: bytes) -> None:
    # Was: decoded to a float that encode() then refused with LocalProtocolError.
    data = _event_with(b"<ei:value>12.0</ei:value>", b"<ei:value>" + number + b"</ei:value>")
    with pytest.raises(schemas.InvalidData, match="not a finite number"):
        schemas.decode(data)


def test_year_one_survives_a_round_trip() -> None:
    # Was: format_datetime wrote "1-01-01T...", which the xcal pattern (four-digit year) refuses.
    data = _event_with(b"2025-03-18T14:00:00Z", b"0001-01-01T00:00:00Z")
    message = assert_contract(data)
    assert message is not None
    assert_xsd_valid(schemas.encode(message))
    assert format_datetime(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"


def test_huge_decimal_hertz_is_sent_without_exponent() -> None:
    # Was: power:hertz (xs:decimal) re-encoded as "1e+26", which xs:decimal does not allow.
    doc = SEEDS["oadrRegisterReport"].replace(
        b"<power:hertz>50</power:hertz>", b"<power:hertz>100000000000000000000000000</power:hertz>"
    )
    message = assert_contract(doc)
    assert message is not None
    assert b"e+26" not in schemas.encode(message)


def test_offset_past_datetime_max_is_invalid_data() -> None:
    # Reachable through dsp:timestamp (xs:dateTime admits offsets); was OverflowError.
    with pytest.raises(schemas.InvalidData, match="out of range"):
        parse_datetime("9999-12-31T23:59:59-14:00")
    with pytest.raises(schemas.InvalidData, match="out of range"):
        parse_duration("P1000000000D")


def _corrupt_key_oid(cert_pem: bytes) -> bytes:
    """The DER certificate with the id-ecPublicKey OID bent into an unknown one."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    ec_public_key_oid = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
    assert ec_public_key_oid in der
    return der.replace(ec_public_key_oid, bytes.fromhex("2a8648ce3d0250"), 1)


def test_unreadable_certificate_key_is_signature_invalid() -> None:
    # Was: cryptography's UnsupportedAlgorithm escaped decode from public_key() in the checks.
    key_pem, cert_pem = identity()
    schema = schemas.SchemaSet()
    sender = schemas.Codec(
        schema=schema, signer=schemas.Signer(key_pem, cert_pem), clock=lambda: T0
    )
    wire = sender.encode(schemas.Poll(ven_id="v1"))
    good = base64.b64encode(
        x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    )
    assert good in wire
    tampered = wire.replace(good, base64.b64encode(_corrupt_key_oid(cert_pem)))
    with pytest.raises(schemas.SignatureInvalid, match="unreadable certificate"):
        receiver(schema, cert_pem).decode(tampered)


@pytest.mark.parametrize(("start", "duration"), [
    (b"9999-12-31T00:00:00Z", b"P1D"), (b"0001-01-01T00:00:00Z", b"-P1D")])
def test_period_ending_past_the_datetime_range_is_invalid_data(start: bytes,
                                                               duration: bytes) -> None:
    # Was: decoded, then OverflowError in the VTN adding dtstart + duration (catch-all 469).
    data = _event_with(b"2025-03-18T14:00:00Z", start).replace(
        b"<xcal:duration>PT1H</xcal:duration>", b"<xcal:duration>" + duration + b"</xcal:duration>",
        1)
    with pytest.raises(schemas.InvalidData, match="period out of range"):
        schemas.decode(data)


def test_duration_over_a_century_is_invalid_data() -> None:
    # Was: P999999999D decoded, then overflowed wherever it was added or stored (SQLite keeps an
    # interval as 1970-01-01 plus it).
    assert parse_duration("P36525D").days == 36_525
    with pytest.raises(schemas.InvalidData, match="duration out of range"):
        parse_duration("P36526D")
