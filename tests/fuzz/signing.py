"""A throw-away signing identity for the signed-message fuzz tests (made here, never committed),
and :func:`resign`, :func:`reference_bomb`, :func:`namespace_flood`, :func:`attribute_flood` and
:func:`id_flood`: signed payloads of any shape whose every digest and signature value is correct,
as an attacker holding a trusted key makes them; :class:`RawSigner` signs with keys
``schemas.Signer`` refuses.
"""

from __future__ import annotations

import base64
import copy
import secrets
from datetime import UTC, datetime, timedelta
from math import gcd
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
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
OADR = "{http://openadr.org/oadr-2.0b/2012/07}"


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


def _inclusive(root: etree._Element) -> None:
    """Inclusive c14n (openleadr's) for SignedInfo and both references: it renders every
    namespace in scope."""
    info = root[0].find(DS + "SignedInfo")
    assert info is not None
    for method in info.iter(DS + "CanonicalizationMethod", DS + "Transform"):
        method.set("Algorithm", _dsig.C14N)


def namespace_flood(wire: bytes, signer: schemas.Signer, declarations: int) -> bytes:
    """``wire`` with ``declarations`` unused namespaces on oadrPayload and inclusive c14n,
    re-signed."""
    root = etree.fromstring(wire)
    nsmap: dict[str | None, str] = dict(root.nsmap)
    nsmap.update({f"n{i}": f"urn:f:{i}" for i in range(declarations)})
    flooded = etree.Element(root.tag, nsmap=nsmap)
    flooded.extend(list(root))
    _inclusive(flooded)
    return resign(flooded, signer)


def attribute_flood(wire: bytes, signer: schemas.Signer, attributes: int) -> bytes:
    """``wire`` with one element of ``attributes`` attributes inside SignedInfo's first
    ds:Transform (XSD: any foreign element, laxly), re-signed."""
    root = etree.fromstring(wire)
    transform = root.find(f"{DS}Signature/{DS}SignedInfo/{DS}Reference/{DS}Transforms/"
                          f"{DS}Transform")
    assert transform is not None
    etree.SubElement(transform, "{urn:flood}x", {f"a{i}": "" for i in range(attributes)})
    return resign(root, signer)


def id_flood(wire: bytes, signer: schemas.Signer, elements: int) -> bytes:
    """``wire`` with an extra ds:Object of ``elements`` foreign elements, each with an ``Id`` and an
    ``oadr:Id`` (the XSD lets any foreign element in, laxly), re-signed."""
    root = etree.fromstring(wire)
    extra = etree.SubElement(root[0], DS + "Object")
    for i in range(elements):
        etree.SubElement(extra, "{urn:flood}x", {"Id": f"a{i}", f"{OADR}Id": f"b{i}"})
    return resign(root, signer)


def rsa_with_big_exponent(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A valid RSA key whose public exponent is nearly as long as its modulus: each verification
    with it costs ~60x one with e = 65537."""
    numbers = rsa.generate_private_key(65537, bits).private_numbers()
    p, q = numbers.p, numbers.q
    phi = (p - 1) * (q - 1)
    while gcd(e := secrets.randbits(bits - 2) | (1 << (bits - 3)) | 1, phi) != 1:
        pass
    d = pow(e, -1, phi)
    return rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
        rsa.RSAPublicNumbers(e, p * q)).private_key()


class RawSigner:
    """Signs with any RSA or EC key, carrying ``chain`` (``schemas.Signer`` refuses small RSA
    keys): a hostile sender, for ``schemas._dsig.sign``."""

    def __init__(self, key: Any, chain: tuple[x509.Certificate, ...]) -> None:
        self._key = key
        algorithm = _dsig.RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else (
            _dsig.ECDSA_SHA256)
        self.template = _dsig.signature_template(algorithm, tuple(
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in chain))

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        der = self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        return _dsig.raw_ecdsa(der, self._key.curve.key_size)
