"""XML signatures in the codec: round trips, XSD validity, interop, each refusal with its reason.

Keys and certificates are generated here with ``cryptography`` (never committed). The clock is a
plain object the tests move; nothing sleeps.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from openleadr.messaging import create_message, validate_xml_signature
from signxml import XMLVerifier

import schemas
from tests.kit.clock import Clock
from tests.kit.signing import DS, OADR, POLL, T0, Identity, make_identity, pair

from .strategies import ei_responses, ids
from .xsd_oracle import assert_xsd_valid

EI = "{http://docs.oasis-open.org/ns/energyinterop/201110}"



@pytest.fixture(scope="module")
def rsa_ven() -> Identity:
    return make_identity("ven-rsa", kind="rsa")


@pytest.fixture(scope="module")
def ec_ven() -> Identity:
    return make_identity("ven-ec")


@pytest.fixture(scope="module")
def schema() -> schemas.SchemaSet:
    return schemas.SchemaSet()


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_signed_roundtrip_is_xsd_valid_and_verified(
    kind: str, rsa_ven: Identity, ec_ven: Identity, schema: schemas.SchemaSet
) -> None:
    ven = rsa_ven if kind == "rsa" else ec_ven
    sender, receiver = pair(ven.signer(), ven.cert_pem, schema, Clock(T0))
    wire = sender.encode(POLL)
    assert_xsd_valid(wire)
    root = etree.fromstring(wire)
    assert root[0].tag == DS + "Signature"  # enveloped, first child of oadrPayload
    assert root.find(OADR + "oadrSignedObject").get(OADR + "Id") == "oadrSignedObject"
    message, verification = receiver.decode_signed(wire)
    assert message == POLL
    assert message.signature is schemas.SignatureState.VERIFIED
    assert verification is not None
    assert verification.certificate == ven.certificate
    assert verification.timestamp == T0


@given(message=st.builds(schemas.Response, response=ei_responses, ven_id=st.one_of(st.none(), ids)))
def test_any_signed_response_roundtrips(
    message: schemas.Response, ec_ven: Identity, schema: schemas.SchemaSet
) -> None:
    """Whatever text the IDs hold, c14n on both sides agrees and the XSD still accepts it."""
    sender, receiver = pair(ec_ven.signer(), ec_ven.cert_pem, schema, Clock(T0))
    wire = sender.encode(message)
    assert_xsd_valid(wire)
    decoded = receiver.decode(wire)
    assert decoded == message
    assert decoded.signature is schemas.SignatureState.VERIFIED


def test_ecdsa_value_is_raw_r_and_s(ec_ven: Identity, schema: schemas.SchemaSet) -> None:
    sender, _ = pair(ec_ven.signer(), ec_ven.cert_pem, schema, Clock(T0))
    value = etree.fromstring(sender.encode(POLL)).findtext(f"{DS}Signature/{DS}SignatureValue")
    assert len(base64.b64decode(value or "")) == 64  # 32-byte r || 32-byte s, not DER


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_signxml_verifies_our_signature(
    kind: str, rsa_ven: Identity, ec_ven: Identity, schema: schemas.SchemaSet
) -> None:
    """An independent XML-DSig implementation agrees with our c14n, digests and values."""
    ven = rsa_ven if kind == "rsa" else ec_ven
    sender, _ = pair(ven.signer(), ven.cert_pem, schema, Clock(T0))
    verified = XMLVerifier().verify(
        sender.encode(POLL), x509_cert=ven.cert_pem.decode(), expect_references=2
    )
    assert len(verified) == 2


def test_unsigned_and_unverified_states(ec_ven: Identity, schema: schemas.SchemaSet) -> None:
    sender, _ = pair(ec_ven.signer(), ec_ven.cert_pem, schema, Clock(T0))
    plain = schemas.Codec(schema=schema)
    assert plain.decode(sender.encode(POLL)).signature is schemas.SignatureState.UNVERIFIED
    assert plain.decode(plain.encode(POLL)).signature is schemas.SignatureState.ABSENT


def test_require_signature_refuses_unsigned(ec_ven: Identity, schema: schemas.SchemaSet) -> None:
    strict = schemas.Codec(schema=schema, require_signature=True)
    with pytest.raises(schemas.SignatureInvalid, match=r"unsigned") as caught:
        strict.decode(schemas.Codec(schema=schema).encode(POLL))
    assert caught.value.response_code == 459


def test_ca_issued_signer_verifies_through_carried_intermediate(schema: schemas.SchemaSet) -> None:
    root_ca = make_identity("root", ca=True)
    intermediate = make_identity("intermediate", issuer=root_ca, ca=True)
    ven = make_identity("ven", issuer=intermediate)
    sender, receiver = pair(ven.signer(intermediate), root_ca.cert_pem, schema, Clock(T0))
    assert receiver.decode(sender.encode(POLL)).signature is schemas.SignatureState.VERIFIED


# ---------------------------------------------------------------- refusals


def test_tampered_body_is_a_digest_mismatch(ec_ven: Identity, schema: schemas.SchemaSet) -> None:
    sender, receiver = pair(ec_ven.signer(), ec_ven.cert_pem, schema, Clock(T0))
    wire = sender.encode(POLL).replace(b">000123<", b">000666<")
    with pytest.raises(schemas.SignatureInvalid, match=r"digest mismatch.*signed body was altered"):
        receiver.decode(wire)


def test_tampered_nonce_is_a_digest_mismatch(ec_ven: Identity, schema: schemas.SchemaSet) -> None:
    sender, receiver = pair(ec_ven.signer(), ec_ven.cert_pem, schema, Clock(T0))
    root = etree.fromstring(sender.encode(POLL))
    nonce = next(root.iter("{http://openadr.org/oadr-2.0b/2012/07/xmldsig-properties}nonce"))
    nonce.text = "fresh-looking-nonce"
    with pytest.raises(schemas.SignatureInvalid, match=r"digest mismatch.*ReplayProtect was"):
        receiver.decode(etree.tostring(root))


def test_bad_signature_value(rsa_ven: Identity, schema: schemas.SchemaSet) -> None:
    sender, receiver = pair(rsa_ven.signer(), rsa_ven.cert_pem, schema, Clock(T0))
    root = etree.fromstring(sender.encode(POLL))
    value = root.find(f"{DS}Signature/{DS}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 0xFF
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(schemas.SignatureInvalid, match=r"bad signature value"):
        receiver.decode(etree.tostring(root))


def test_untrusted_signer_is_refused(schema: schemas.SchemaSet) -> None:
    stranger, trusted = make_identity("stranger"), make_identity("someone-else")
    sender, receiver = pair(stranger.signer(), trusted.cert_pem, schema, Clock(T0))
    with pytest.raises(schemas.SignatureInvalid, match=r"untrusted certificate.*CN=stranger"):
        receiver.decode(sender.encode(POLL))


def test_signer_from_another_ca_is_refused(schema: schemas.SchemaSet) -> None:
    our_ca, their_ca = make_identity("our-ca", ca=True), make_identity("their-ca", ca=True)
    ven = make_identity("ven", issuer=their_ca)
    sender, receiver = pair(ven.signer(their_ca), our_ca.cert_pem, schema, Clock(T0))
    with pytest.raises(schemas.SignatureInvalid, match=r"untrusted certificate.*no trusted CA"):
        receiver.decode(sender.encode(POLL))


def test_expired_certificate_is_refused(schema: schemas.SchemaSet) -> None:
    ven = make_identity("ven", valid=(T0 - timedelta(days=2), T0 - timedelta(days=1)))
    sender, receiver = pair(ven.signer(), ven.cert_pem, schema, Clock(T0))
    with pytest.raises(schemas.SignatureInvalid, match=r"untrusted certificate.*not at 2026-03-01"):
        receiver.decode(sender.encode(POLL))


def test_signature_wrapping_is_refused(ec_ven: Identity, schema: schemas.SchemaSet) -> None:
    """A signed copy hidden in ds:Object cannot vouch for a different body."""
    sender, receiver = pair(ec_ven.signer(), ec_ven.cert_pem, schema, Clock(T0))
    root = etree.fromstring(sender.encode(POLL))
    body = root.find(OADR + "oadrSignedObject")
    etree.SubElement(root.find(DS + "Signature"), DS + "Object").append(etree.fromstring(
        etree.tostring(body)
    ))
    # the reference now resolves to the hidden copy, whose digest still matches
    body.set(OADR + "Id", "decoy")
    next(body.iter(EI + "venID")).text = "000666"
    with pytest.raises(schemas.SignatureInvalid, match=r"malformed.*covers oadrSignedObject"):
        receiver.decode(etree.tostring(root))


def test_sha1_digest_is_refused(ec_ven: Identity, schema: schemas.SchemaSet) -> None:
    sender, receiver = pair(ec_ven.signer(), ec_ven.cert_pem, schema, Clock(T0))
    root = etree.fromstring(sender.encode(POLL))
    method = next(root.iter(DS + "DigestMethod"))
    method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")
    with pytest.raises(schemas.SignatureInvalid, match=r"malformed signature.*only SHA-256"):
        receiver.decode(etree.tostring(root))


def test_signer_refuses_a_certificate_of_another_key() -> None:
    one, other = make_identity("one"), make_identity("other")
    with pytest.raises(ValueError, match=r"does not belong"):
        schemas.Signer(one.key_pem, other.cert_pem)


# ---------------------------------------------------------------- openleadr interop


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_openleadr_signed_message_verifies(
    kind: str, rsa_ven: Identity, ec_ven: Identity, schema: schemas.SchemaSet
) -> None:
    """openleadr signs with inclusive c14n and its own timestamps (wall clock)."""
    ven = rsa_ven if kind == "rsa" else ec_ven
    wire = create_message("oadrPoll", cert=ven.cert_pem, key=ven.key_pem, ven_id="000123")
    receiver = schemas.Codec(schema=schema, verifier=schemas.Verifier(ven.cert_pem))
    message = receiver.decode(wire.encode())
    assert message == POLL
    assert message.signature is schemas.SignatureState.VERIFIED


def test_openleadr_verifies_our_signature(ec_ven: Identity, schema: schemas.SchemaSet) -> None:
    # openleadr checks timestamps against its own wall clock, so sign with the real one here.
    sender = schemas.Codec(schema=schema, signer=ec_ven.signer())
    validate_xml_signature(etree.fromstring(sender.encode(POLL)))
