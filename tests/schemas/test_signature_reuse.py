"""What the signing and verifying fast paths reuse, and that reuse never leaks between messages.

A :class:`schemas.Signer` holds a ready ds:Signature (its template) that every signature copies;
a :class:`schemas.Verifier` works out a trusted signer's fingerprint once per chain. These tests
pin the observable contract: each message gets its own nonce and digests, the template stays
blank, the bytes we sign are the c14n of the SignedInfo as it stands in the sent payload, and
the fingerprint handed to the services is the signer's, message after message.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

import schemas
from schemas.identity import certificate_fingerprint
from tests.kit.clock import Clock
from tests.kit.signing import DS, POLL, T0, Identity, make_identity, pair

DSP = "{http://openadr.org/oadr-2.0b/2012/07/xmldsig-properties}"


@pytest.fixture(scope="module")
def schema() -> schemas.SchemaSet:
    return schemas.SchemaSet()


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_each_signature_is_its_own_and_the_template_stays_blank(
    kind: str, schema: schemas.SchemaSet
) -> None:
    ven = make_identity(f"ven-{kind}", kind=kind)
    signer = ven.signer()
    sender, receiver = pair(signer, ven.cert_pem, schema, Clock(T0))
    first, second = sender.encode(POLL), sender.encode(POLL)
    nonces = [etree.fromstring(w).findtext(f".//{DSP}nonce") for w in (first, second)]
    assert nonces[0] and nonces[1] and nonces[0] != nonces[1]
    digests = [etree.fromstring(w).findall(f".//{DS}DigestValue")[1].text for w in (first, second)]
    assert digests[0] != digests[1]  # the ReplayProtect reference covers each message's own nonce
    for text in ("DigestValue", "SignatureValue"):
        assert all(not e.text for e in signer.template.iter(DS + text))
    assert all(not e.text for e in signer.template.iter(DSP + "nonce", DSP + "timestamp"))
    assert receiver.decode(first).signature is schemas.SignatureState.VERIFIED
    assert receiver.decode(second).signature is schemas.SignatureState.VERIFIED


def test_signed_bytes_are_the_sent_signed_info_canonicalised(schema: schemas.SchemaSet) -> None:
    """The value verifies over the exclusive c14n of SignedInfo where it sits in the payload."""
    ven = make_identity("ven-ec-c14n")
    sender, _ = pair(ven.signer(), ven.cert_pem, schema, Clock(T0))
    root = etree.fromstring(sender.encode(POLL))
    info = root.find(f"{DS}Signature/{DS}SignedInfo")
    assert info is not None
    signed = etree.tostring(info, method="c14n", exclusive=True)
    value = base64.b64decode(root.findtext(f"{DS}Signature/{DS}SignatureValue") or "")
    parts = schemas._dsig.read(root, root[0])
    assert parts.signed_info_c14n == signed
    schemas._dsig.check_value(parts, ven.certificate.public_key())  # raises if they differ
    assert parts.value == value


def _der(identity: Identity) -> bytes:
    return identity.certificate.public_bytes(serialization.Encoding.DER)


def test_verification_names_each_signer_by_its_own_fingerprint(schema: schemas.SchemaSet) -> None:
    ca = make_identity("ca", ca=True)
    alice, bob = make_identity("alice", issuer=ca), make_identity("bob", issuer=ca)
    clock = Clock(T0)
    receiver = schemas.Codec(schema=schema, verifier=schemas.Verifier(ca.cert_pem), clock=clock)
    for _ in range(2):  # the second round comes from the verifier's chain memory
        for ven in (alice, bob):
            sender = schemas.Codec(schema=schema, signer=ven.signer(), clock=clock)
            _, verification = receiver.decode_signed(sender.encode(POLL))
            assert verification is not None
            assert verification.signer_fingerprint == certificate_fingerprint(_der(ven))
            assert verification.fingerprint == hashlib.sha256(_der(ven)).digest()
    assert certificate_fingerprint(_der(alice)) != certificate_fingerprint(_der(bob))
