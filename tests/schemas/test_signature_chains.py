"""The Verifier's memory of trusted signer chains: a known chain skips the parse and the issuer
signature check, never the signature value, the digests or the validity periods.

Identities come from ``test_signature``'s helpers (generated in memory, never committed).
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from lxml import etree

import schemas
from tests.kit.clock import Clock
from tests.kit.signing import DS, POLL, T0, make_identity, pair


def test_known_chain_still_checks_every_certificates_validity() -> None:
    valid = (T0 - timedelta(days=30), T0 + timedelta(days=2))
    root_ca = make_identity("root", ca=True, valid=valid)
    intermediate = make_identity("intermediate", issuer=root_ca, ca=True)
    ven = make_identity("ven", issuer=intermediate)
    clock = Clock(T0)
    sender, receiver = pair(ven.signer(intermediate), root_ca.cert_pem, schemas.SchemaSet(), clock)
    assert receiver.decode(sender.encode(POLL)).signature is schemas.SignatureState.VERIFIED
    clock.now = T0 + timedelta(days=3)  # the anchor has expired since the chain was remembered
    with pytest.raises(schemas.SignatureInvalid, match=r"untrusted certificate: 'CN=root'.*not at"):
        receiver.decode(sender.encode(POLL))


def test_known_chain_still_checks_the_signature_value() -> None:
    ven = make_identity("ven", kind="rsa")
    sender, receiver = pair(ven.signer(), ven.cert_pem, schemas.SchemaSet(), Clock(T0))
    assert receiver.decode(sender.encode(POLL)).signature is schemas.SignatureState.VERIFIED
    root = etree.fromstring(sender.encode(POLL))
    value = root.find(f"{DS}Signature/{DS}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 0xFF
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(schemas.SignatureInvalid, match=r"bad signature value"):
        receiver.decode(etree.tostring(root))


def test_known_chain_with_another_key_is_refused() -> None:
    # A stranger copies a trusted signer's certificate into KeyInfo and signs with its own key.
    trusted, stranger = make_identity("trusted"), make_identity("stranger")
    clock = Clock(T0)
    sender, receiver = pair(trusted.signer(), trusted.cert_pem, schemas.SchemaSet(), clock)
    assert receiver.decode(sender.encode(POLL)).signature is schemas.SignatureState.VERIFIED
    forger = schemas.Codec(signer=stranger.signer(), clock=clock)
    root = etree.fromstring(forger.encode(POLL))
    cert = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    cert.text = schemas.Signer(trusted.key_pem, trusted.cert_pem).certificates_b64[0]
    with pytest.raises(schemas.SignatureInvalid, match=r"bad signature value"):
        receiver.decode(etree.tostring(root))


def test_memory_is_bounded_and_forgotten_chains_verify_again() -> None:
    from schemas import signature

    ca = make_identity("ca", ca=True)
    verifier = schemas.Verifier(ca.cert_pem)
    receiver = schemas.Codec(verifier=verifier, clock=Clock(T0))
    vens = [make_identity(f"ven-{n}", issuer=ca) for n in range(3)]
    limit = signature._MAX_CHAINS
    signature._MAX_CHAINS = 2  # type: ignore[misc]
    try:
        for ven in (*vens, vens[0]):
            sender = schemas.Codec(signer=ven.signer(), clock=receiver.clock)
            assert receiver.decode(sender.encode(POLL)).signature is schemas.SignatureState.VERIFIED
            assert len(verifier._chains) <= 2
    finally:
        signature._MAX_CHAINS = limit  # type: ignore[misc]
