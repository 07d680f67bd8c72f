"""XML-DSig mechanics for OpenADR 2.0b: build and take apart the ds:Signature inside oadrPayload.

OpenADR 2.0b profile, section 10 (security): a signed payload carries one enveloped ds:Signature
as the first child of oadrPayload (oadr_20b.xsd: ``Signature?, oadrSignedObject``). Its SignedInfo
holds two references, both same-document ``#id`` URIs with SHA-256 digests: one to
oadrSignedObject (whose ``oadr:Id`` names it; the schema's attributeFormDefault is qualified) and
one to the ds:SignatureProperties carrying dsp:ReplayProtect (timestamp + nonce), so the replay
data is signed too. We sign with exclusive c14n and RSA-SHA256 or ECDSA-SHA256; ECDSA values are
raw r||s (XML-DSig 1.1, section 6.4.3), not DER; algorithm URIs from RFC 6931.

Invariants on the reading side, each against a known attack or ambiguity:
- only the Signature that is oadrPayload's first child counts, and a reference must land on the
  payload's own oadrSignedObject or inside this Signature's ds:Object (no signature wrapping: a
  signed copy elsewhere in the tree cannot stand in for the body we decode);
- every ``#id`` resolves to exactly one element; SignedInfo holds exactly two references, to two
  distinct elements: one covers oadrSignedObject, the other the single ReplayProtect;
- work is bounded before it is done: the references are counted, then the ds:Signature's size capped
  (:data:`MAX_SIGNATURE_NODES`, :data:`MAX_SIGNATURE_CHARS`) and the namespace declarations in
  scope anywhere in the payload too (:data:`MAX_NAMESPACES_IN_SCOPE`: libxml2's c14n costs about
  elements x declarations in scope squared) by :func:`read`, before it maps ids or canonicalises
  anything; it computes no digest; the caller checks the signature value over SignedInfo next
  (:func:`check_value`), and only then the digests (:func:`check_digests`), the one step whose
  cost grows with the body;
- canonicalisation is exclusive or inclusive c14n 1.0 without comments (the latter because openleadr
  signs with it), digests are SHA-256 only; anything else is a malformed signature, never ignored.

Failures raise :class:`SignatureInvalid` whose reason starts with what failed (``malformed
signature``, ``digest mismatch``, ``bad signature value``); trust in the certificate is decided by
:mod:`schemas.signature`, not here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree

from ._errors import InvalidData, SignatureInvalid
from ._wire import DS, OADR, copy_tree, first, format_datetime, parse_datetime, q

DSP: Final = "http://openadr.org/oadr-2.0b/2012/07/xmldsig-properties"
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N: Final = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
PROPERTIES_TYPE: Final = DS + "SignatureProperties"

SIGNED_OBJECT_ID: Final = "oadrSignedObject"
_SIGNATURE_ID: Final = "oadrSignature"
_PROPERTIES_ID: Final = "oadrReplayProtect"
_MAX_NONCE: Final = 256  # nonces are remembered for a whole window: cap what a peer makes us hold
REFERENCES: Final = 2  # the profile's: oadrSignedObject and the ReplayProtect
# Ours is 24 elements, 12 attributes and ~1.5 KB of text plus the certificates (a 4-certificate
# RSA-4096 chain is ~10 KB of base64); openleadr's is the same shape. Attributes count as nodes:
# c14n sorts an element's attributes in quadratic time.
MAX_SIGNATURE_NODES: Final = 64
MAX_SIGNATURE_CHARS: Final = 32 * 1024
# Ours and openleadr's payloads have at most 15 declarations on any element and its ancestors.
MAX_NAMESPACES_IN_SCOPE: Final = 32

_PAYLOAD = q(OADR, "oadrPayload")
_SIGNED_OBJECT = q(OADR, "oadrSignedObject")
_OADR_ID = q(OADR, "Id")
_SIGNATURE = q(DS, "Signature")
_SIGNED_INFO = q(DS, "SignedInfo")
_C14N_METHOD = q(DS, "CanonicalizationMethod")
_SIGNATURE_METHOD = q(DS, "SignatureMethod")
_REFERENCE = q(DS, "Reference")
_TRANSFORMS = q(DS, "Transforms")
_TRANSFORM = q(DS, "Transform")
_DIGEST_METHOD = q(DS, "DigestMethod")
_DIGEST_VALUE = q(DS, "DigestValue")
_SIGNATURE_VALUE = q(DS, "SignatureValue")
_KEY_INFO = q(DS, "KeyInfo")
_X509_DATA = q(DS, "X509Data")
_X509_CERTIFICATE = q(DS, "X509Certificate")
_OBJECT = q(DS, "Object")
_PROPERTIES = q(DS, "SignatureProperties")
_PROPERTY = q(DS, "SignatureProperty")
_REPLAY_PROTECT = q(DSP, "ReplayProtect")
_TIMESTAMP = q(DSP, "timestamp")
_NONCE = q(DSP, "nonce")
_INCLUSIVE_NAMESPACES = q(EXC_C14N, "InclusiveNamespaces")
# Document order, so one element's Id and oadr:Id come one after the other (see _ids).
_ID_ATTRIBUTES = etree.XPath("//@Id | //@oadr:Id", namespaces={"oadr": OADR})


class RawSigner(Protocol):
    """What :func:`sign` needs from a key holder (``schemas.Signer`` is one)."""

    @property
    def template(self) -> etree._Element:
        """Its :func:`signature_template`; only ever copied, never changed."""
        ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """One ds:Reference, resolved: the element it covers and the digest it claims."""

    uri: str
    target: etree._Element
    transform: etree._Element | None  # its one c14n ds:Transform, if any
    expected: str  # the DigestValue, whitespace removed


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedParts:
    """A structurally sound ds:Signature; neither its value nor its digests are checked yet."""

    signed_info_c14n: bytes
    algorithm: str
    value: bytes
    certificate_ders: tuple[bytes, ...]  # as carried, signer first; parsed by the caller
    timestamp: datetime
    nonce: str
    references: tuple[Reference, Reference]  # the body's, then the one covering ReplayProtect


def malformed(why: str) -> SignatureInvalid:
    return SignatureInvalid(f"malformed signature: {why}")


# ---------------------------------------------------------------- c14n and digests


def _canonical(element: etree._Element, method: etree._Element | None) -> bytes:
    """``element`` canonicalised as ``method`` (a ds:CanonicalizationMethod or ds:Transform) says.

    No method means inclusive c14n: XML-DSig 4.4.3.2 converts a same-document node-set that way.
    """
    algorithm = C14N if method is None else method.get("Algorithm")
    try:
        if algorithm == EXC_C14N:
            prefixes = None
            inclusive = None if method is None else first(method, _INCLUSIVE_NAMESPACES)
            if inclusive is not None:
                prefixes = (inclusive.get("PrefixList") or "").split()
            return _exclusive(element, prefixes) if prefixes else _exclusive_detached(element)
        if algorithm == C14N:
            return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)
    except etree.C14NError:
        # libxml2 refuses e.g. a relative namespace URI (c14n 1.0 section 2.3 forbids them).
        raise malformed(f"<{etree.QName(element).localname}> cannot be canonicalised") from None
    raise malformed(f"unsupported canonicalization {algorithm!r}")


def _exclusive(element: etree._Element, prefixes: list[str] | None = None) -> bytes:
    """Exclusive c14n of ``element`` where it stands; ``prefixes``: an InclusiveNamespaces
    PrefixList, rendered when in scope even if unused."""
    return etree.tostring(
        element, method="c14n", exclusive=True, with_comments=False,
        inclusive_ns_prefixes=prefixes,
    )


def _exclusive_detached(element: etree._Element) -> bytes:
    """Exclusive c14n of ``element`` inside a payload, canonicalised as a copy of its subtree.

    Same bytes as :func:`_exclusive`, for a fifth to two fifths less CPU: lxml canonicalises an
    element below the root by declaring every namespace in scope (oadrPayload's 13) on a stand-in
    root first, while the copy declares only the namespaces its subtree uses, which are exactly the
    ones exclusive c14n renders. Not for a PrefixList, which may name a prefix only the original has
    in scope.
    """
    detached = copy_tree(element)
    detached.tail = None  # copied along; never part of the element's canonical form
    return _exclusive(detached)


def _digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


# ---------------------------------------------------------------- signing


def signature_template(algorithm: str, certificates_b64: tuple[str, ...]) -> etree._Element:
    """A ds:Signature for one key, complete but for its per-message texts (the two DigestValues,
    SignatureValue, timestamp and nonce); :func:`sign` fills in a copy of it.

    It is the root of a document of its own and declares only ``ds`` (and ``dsp`` on
    ReplayProtect), so canonicalising its parts before it joins the payload is cheap; exclusive
    c14n renders only visibly used namespaces, so the bytes are the same once it is inside.
    """
    signature = etree.Element(_SIGNATURE, Id=_SIGNATURE_ID, nsmap={"ds": DS})
    info = etree.SubElement(signature, _SIGNED_INFO)
    etree.SubElement(info, _C14N_METHOD, Algorithm=EXC_C14N)
    etree.SubElement(info, _SIGNATURE_METHOD, Algorithm=algorithm)
    for uri, kind in (("#" + SIGNED_OBJECT_ID, None), ("#" + _PROPERTIES_ID, PROPERTIES_TYPE)):
        reference = etree.SubElement(info, _REFERENCE, URI=uri)
        if kind is not None:
            reference.set("Type", kind)
        transforms = etree.SubElement(reference, _TRANSFORMS)
        etree.SubElement(transforms, _TRANSFORM, Algorithm=EXC_C14N)
        etree.SubElement(reference, _DIGEST_METHOD, Algorithm=SHA256)
        etree.SubElement(reference, _DIGEST_VALUE)
    etree.SubElement(signature, _SIGNATURE_VALUE)
    x509_data = etree.SubElement(etree.SubElement(signature, _KEY_INFO), _X509_DATA)
    for certificate in certificates_b64:
        etree.SubElement(x509_data, _X509_CERTIFICATE).text = certificate
    properties = etree.SubElement(etree.SubElement(signature, _OBJECT), _PROPERTIES)
    properties.set("Id", _PROPERTIES_ID)
    prop = etree.SubElement(properties, _PROPERTY, Target="#" + _SIGNATURE_ID)
    replay = etree.SubElement(prop, _REPLAY_PROTECT, nsmap={"dsp": DSP})
    etree.SubElement(replay, _TIMESTAMP)
    etree.SubElement(replay, _NONCE)
    return signature


def sign(root: etree._Element, signer: RawSigner, *, timestamp: datetime, nonce: str) -> None:
    """Insert the enveloped ds:Signature (with ReplayProtect) as the first child of ``root``."""
    signed_object = root.find(_SIGNED_OBJECT)
    assert signed_object is not None, "build() always makes oadrSignedObject"
    signed_object.set(_OADR_ID, SIGNED_OBJECT_ID)
    signature = copy_tree(signer.template)
    # Fixed positions, see signature_template: SignedInfo, SignatureValue, KeyInfo, Object.
    info, value, properties = signature[0], signature[1], signature[3][0]
    replay = properties[0][0]
    replay[0].text = format_datetime(timestamp)
    replay[1].text = nonce
    info[2][2].text = _digest(_exclusive_detached(signed_object))
    info[3][2].text = _digest(_exclusive(properties))
    value.text = base64.b64encode(signer.sign(_exclusive(info))).decode("ascii")
    root.insert(0, signature)


def raw_ecdsa(der: bytes, key_size: int) -> bytes:
    """DER ECDSA signature -> fixed-width r||s, as XML-DSig wants it."""
    r, s = decode_dss_signature(der)
    width = (key_size + 7) // 8
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


# ---------------------------------------------------------------- reading and checking


def find_signature(root: etree._Element) -> etree._Element | None:
    """The ds:Signature that counts: the XSD allows it only as oadrPayload's first element, before
    oadrSignedObject (so a root of one child, counted without a Python proxy, has none)."""
    if len(root) < 2:
        return None
    head = next(iter(root), None)
    return head if head is not None and head.tag == _SIGNATURE else None


def _ids(root: etree._Element) -> dict[str, list[etree._Element]]:
    """Every element by each of its ``Id`` / ``oadr:Id`` values, from one XPath over the tree
    (a third of the CPU of walking every element in Python)."""
    ids: dict[str, list[etree._Element]] = {}
    for value in cast(list[Any], _ID_ATTRIBUTES(root)):
        element = value.getparent()
        found = ids.setdefault(str(value), [])
        if not found or found[-1] is not element:  # Id and oadr:Id alike on one element: once
            found.append(element)
    return ids


def _resolve(ids: dict[str, list[etree._Element]], uri: str | None) -> etree._Element:
    if uri is None or not uri.startswith("#") or len(uri) < 2:
        raise malformed(f"reference URI {uri!r} is not a same-document '#id'")
    found = ids.get(uri[1:], ())
    if len(found) != 1:
        raise malformed(f"reference {uri!r} matches {len(found)} elements, not exactly one")
    return found[0]


def _check_size(signature: etree._Element) -> None:
    """Refuse a ds:Signature larger than any the profile needs, stopping at the first excess.

    Its parts are digested and canonicalised later; bounding them here bounds that work, whatever
    the referenced elements hold (the body, oadrSignedObject, is bounded by the document cap).
    """
    nodes = chars = 0
    for node in signature.iter():
        nodes += 1 + len(node.attrib)
        if nodes <= MAX_SIGNATURE_NODES:  # lxml finds each attribute value by a search: count first
            chars += len(node.text or "") + len(node.tail or "") + sum(
                len(k) + len(v) for k, v in node.attrib.items())
        if nodes > MAX_SIGNATURE_NODES or chars > MAX_SIGNATURE_CHARS:
            raise malformed(
                f"ds:Signature larger than {MAX_SIGNATURE_NODES} nodes (elements and attributes) "
                f"or {MAX_SIGNATURE_CHARS} characters")


def _check_namespaces(root: etree._Element) -> None:
    """Refuse a payload with more than :data:`MAX_NAMESPACES_IN_SCOPE` namespace declarations on
    one element and its ancestors together (shadowed ones too), before anything is canonicalised.

    libxml2's c14n walks every declaration in scope at each element and keeps the rendered ones in
    sorted lists: 2,500 declarations on oadrPayload make a 60 KB poll's SignedInfo cost 0.25 s,
    and a signed body of 1,000 elements 19 s. One pass over the tree, in C but for the
    declarations themselves.
    """
    in_scope = 0
    for event, _ in etree.iterwalk(root, events=("start-ns", "end-ns")):
        in_scope += 1 if event == "start-ns" else -1
        if in_scope > MAX_NAMESPACES_IN_SCOPE:
            raise malformed(
                f"more than {MAX_NAMESPACES_IN_SCOPE} namespace declarations in scope at one "
                "element")


def _reference(ids: dict[str, list[etree._Element]], reference: etree._Element) -> Reference:
    """One ds:Reference's target and methods, checked for shape; its digest is not computed."""
    uri = reference.get("URI")
    target = _resolve(ids, uri)
    transforms = [
        t for ts in reference.iterchildren(_TRANSFORMS) for t in ts.iterchildren(_TRANSFORM)
    ]
    if len(transforms) > 1:
        raise malformed(f"reference {uri!r} has a transform chain; one c14n transform at most")
    if transforms and transforms[0].get("Algorithm") not in (EXC_C14N, C14N):
        raise malformed(
            f"unsupported canonicalization {transforms[0].get('Algorithm')!r} in {uri!r}")
    method = first(reference, _DIGEST_METHOD)
    if method is None or method.get("Algorithm") != SHA256:
        algorithm = None if method is None else method.get("Algorithm")
        raise malformed(f"reference {uri!r} uses digest {algorithm!r}; only SHA-256 is accepted")
    value = first(reference, _DIGEST_VALUE)
    expected = "".join(((value.text if value is not None else None) or "").split())
    return Reference(uri=uri or "", target=target, transform=transforms[0] if transforms else None,
                     expected=expected)


def _counted_references(info: etree._Element) -> tuple[etree._Element, etree._Element]:
    """SignedInfo's ds:Reference elements, which must be exactly the profile's two."""
    elements = tuple(info.iterchildren(_REFERENCE))
    if len(elements) != REFERENCES:
        raise malformed(
            f"{len(elements)} ds:Reference elements; the profile allows exactly {REFERENCES} "
            "(oadrSignedObject and the ReplayProtect)")
    return elements[0], elements[1]


def _references(
    root: etree._Element, signature: etree._Element,
    elements: tuple[etree._Element, etree._Element],
) -> tuple[Reference, Reference]:
    """The two references the profile allows: (the body's, the one covering ReplayProtect).

    Each must land on a distinct element: one on the payload's own oadrSignedObject, the other on
    this Signature's ds:Object or inside it (no wrapping).
    """
    ids = _ids(root)
    one, two = (_reference(ids, element) for element in elements)
    if one.target is two.target:
        raise malformed(f"references {one.uri!r} and {two.uri!r} cover the same element")
    body = first(root, _SIGNED_OBJECT)
    covering = [r for r in (one, two) if r.target is body]
    if len(covering) != 1:
        raise malformed("no single reference covers oadrSignedObject")
    other = two if covering[0] is one else one
    objects = tuple(signature.iterchildren(_OBJECT))
    if not any(other.target is o or o in other.target.iterancestors() for o in objects):
        raise malformed(f"reference {other.uri!r} points outside oadrSignedObject and ds:Object")
    return covering[0], other


def _text(parent: etree._Element, tag: str) -> str | None:
    child = first(parent, tag)
    return None if child is None else child.text


def _replay_protect(signature: etree._Element, covered: etree._Element) -> tuple[datetime, str]:
    found = list(signature.iter(_REPLAY_PROTECT))
    if len(found) != 1:
        raise malformed(f"{len(found)} dsp:ReplayProtect elements, need exactly one")
    replay = found[0]
    if not (replay is covered or covered in replay.iterancestors()):
        raise malformed("dsp:ReplayProtect is not covered by any reference")
    timestamp, nonce = _text(replay, _TIMESTAMP), _text(replay, _NONCE)
    if not timestamp or not nonce:
        raise malformed("dsp:ReplayProtect lacks a timestamp or a nonce")
    if len(nonce) > _MAX_NONCE:
        raise malformed(f"nonce of {len(nonce)} characters (at most {_MAX_NONCE})")
    try:
        return parse_datetime(timestamp), nonce
    except InvalidData:
        raise malformed(f"dsp:timestamp {timestamp!r} is not an xs:dateTime") from None


def _certificate_ders(signature: etree._Element) -> tuple[bytes, ...]:
    texts = [
        "".join((certificate.text or "").split())
        for key_info in signature.iterchildren(_KEY_INFO)
        for data in key_info.iterchildren(_X509_DATA)
        for certificate in data.iterchildren(_X509_CERTIFICATE)
    ]
    if not texts:
        raise malformed("no ds:X509Certificate in ds:KeyInfo")
    try:
        return tuple(base64.b64decode(t) for t in texts)
    except binascii.Error:
        raise malformed("ds:X509Certificate is not a DER certificate") from None


def load_certificates(ders: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    """Parse the carried DER certificates; a malformed one is a malformed signature."""
    try:
        return tuple(x509.load_der_x509_certificate(der) for der in ders)
    except ValueError:
        raise malformed("ds:X509Certificate is not a DER certificate") from None


def read(root: etree._Element, signature: etree._Element) -> SignedParts:
    """The structure of ``signature``, checked with bounded work: no digest and no signature value
    is computed here (:func:`check_value`, then :func:`check_digests`)."""
    info = first(signature, _SIGNED_INFO)
    method = None if info is None else first(info, _SIGNATURE_METHOD)
    assert info is not None and method is not None, "XSD requires SignedInfo/SignatureMethod"
    counted = _counted_references(info)  # first: counting them costs nothing
    _check_size(signature)  # before the id map: libxml2 merges 10,000 ids in quadratic time
    _check_namespaces(root)
    references = _references(root, signature, counted)
    timestamp, nonce = _replay_protect(signature, references[1].target)
    try:
        value = base64.b64decode("".join((_text(signature, _SIGNATURE_VALUE) or "").split()))
    except binascii.Error:
        raise malformed("ds:SignatureValue is not base64") from None
    return SignedParts(
        signed_info_c14n=_canonical(info, first(info, _C14N_METHOD)),
        algorithm=method.get("Algorithm") or "",
        value=value,
        certificate_ders=_certificate_ders(signature),
        timestamp=timestamp,
        nonce=nonce,
        references=references,
    )


def check_digests(parts: SignedParts) -> None:
    """Each reference's digest over its target; the last and costliest check of a signature."""
    for reference in parts.references:
        if _digest(_canonical(reference.target, reference.transform)) != reference.expected:
            what = "the signed body" if reference.target.tag == _SIGNED_OBJECT else (
                "the ReplayProtect")
            raise SignatureInvalid(
                f"digest mismatch for reference {reference.uri!r}: {what} was altered")


def check_value(parts: SignedParts, key: CertificatePublicKeyTypes) -> None:
    """The SignatureValue over SignedInfo, with ``key``: the first certificate's (the signer's)."""
    try:
        if parts.algorithm == RSA_SHA256 and isinstance(key, rsa.RSAPublicKey):
            key.verify(parts.value, parts.signed_info_c14n, padding.PKCS1v15(), hashes.SHA256())
        elif parts.algorithm == ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePublicKey):
            width = (key.curve.key_size + 7) // 8
            if len(parts.value) != 2 * width:
                raise SignatureInvalid(
                    f"bad signature value: ECDSA value of {len(parts.value)} bytes, "
                    f"expected raw r||s of {2 * width}"
                )
            r = int.from_bytes(parts.value[:width], "big")
            s = int.from_bytes(parts.value[width:], "big")
            der = encode_dss_signature(r, s)
            key.verify(der, parts.signed_info_c14n, ec.ECDSA(hashes.SHA256()))
        else:
            raise malformed(
                f"signature method {parts.algorithm!r} with a {type(key).__name__} certificate key "
                "(accepted: rsa-sha256 with RSA, ecdsa-sha256 with EC)"
            )
    except InvalidSignature:
        raise SignatureInvalid(
            "bad signature value: SignedInfo does not verify with the embedded certificate's key"
        ) from None
