"""A throw-away signing identity for the signed-message fuzz tests (made here, never committed),
and :func:`resign`/:func:`reference_bomb`: signed payloads of any shape whose every digest and
signature value is correct, as an attacker holding a trusted key makes them.
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

import schemas
from schemas import _dsig

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def identity(name: str = "fuzz-ven") -> tuple[bytes, bytes]:
    """(private key PEM, self-signed certificate PEM), EC P-256, valid around :data:`T0`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def receiver(schema: schemas.SchemaSet, trusted_pem: bytes) -> schemas.Codec:
    """A verifying codec with its own fresh ReplayGuard, its clock fixed at :data:`T0`."""
    return schemas.Codec(
        schema=schema,
        verifier=schemas.Verifier(trusted_pem),
        replay=schemas.ReplayGuard(),
        clock=lambda: T0,
        require_signature=True,
    )


DS = "{http://www.w3.org/2000/09/xmldsig#}"


def resign(root: etree._Element, signer: schemas.Signer) -> bytes:
    """``root`` (a signed oadrPayload, edited) with every resolvable reference's digest and the
    signature value computed afresh: what a holder of a trusted key can send."""
    signature = root[0]
    info = signature.find(DS + "SignedInfo")
    assert info is not None
    ids = _dsig._ids(root)
    for reference in info.iterchildren(DS + "Reference"):
        targets = ids.get((reference.get("URI") or "")[1:], [])
        transform = reference.find(f"{DS}Transforms/{DS}Transform")
        value = reference.find(DS + "DigestValue")
        if len(targets) == 1 and value is not None:
            value.text = _dsig._digest(_dsig._canonical(targets[0], transform))
    signed = _dsig._canonical(info, info.find(DS + "CanonicalizationMethod"))
    signature_value = signature.find(DS + "SignatureValue")
    assert signature_value is not None
    signature_value.text = base64.b64encode(signer.sign(signed)).decode("ascii")
    return etree.tostring(root)


def reference_bomb(wire: bytes, signer: schemas.Signer, *, references: int = 1000,
                   object_chars: int = 400_000) -> bytes:
    """The review's CPU bomb: ``references`` ds:Reference to one ``object_chars`` ds:Object
    ("#big"), replacing the two real ones, every digest and the value correct (~663 KB)."""
    root = etree.fromstring(wire)
    signature = root[0]
    big = etree.SubElement(signature, DS + "Object", Id="big")
    big.text = "A" * object_chars
    info = signature.find(DS + "SignedInfo")
    assert info is not None
    model = info.find(DS + "Reference")
    assert model is not None
    for old in info.findall(DS + "Reference"):
        info.remove(old)
    for _ in range(references):
        reference = copy.deepcopy(model)
        reference.set("URI", "#big")
        info.append(reference)
    return resign(root, signer)
