"""Fuzzing signed payloads: a tampered message never verifies as anything but the original.

A receiver with a :class:`schemas.Verifier` and ``require_signature`` gets mutated copies of
messages signed by a trusted key. Every copy must be refused with a RemoteProtocolError
(SignatureInvalid, ReplayRefused, SchemaViolation, ...), or, when the edit is invisible to
canonical XML (quote style, whitespace inside a tag), verify as exactly the message that was
signed. A changed element text inside oadrSignedObject must always be refused. Each example gets
a fresh ReplayGuard, so a refusal is never just "nonce already seen".
"""

from __future__ import annotations

import copy
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from lxml import etree

import schemas
from schemas import _dsig

from .contract import codec, seeds
from .signing import T0, identity, receiver, resign

# No deadline: the suite's policy (tests/conftest.py) keeps wall-clock limits out of pass/fail.
EXAMPLES = settings(max_examples=40)
SIGNED_SEEDS = ("oadrPoll", "oadrDistributeEvent", "oadrUpdateReport", "oadrCreatedEvent")
DS = "http://www.w3.org/2000/09/xmldsig#"
SIGNED_OBJECT = "{http://openadr.org/oadr-2.0b/2012/07}oadrSignedObject"
_OADR_ID = "{http://openadr.org/oadr-2.0b/2012/07}Id"

_KEY, _CERT = identity()
_SCHEMA = schemas.SchemaSet()
_SIGNER = schemas.Signer(_KEY, _CERT)
_SENDER = schemas.Codec(schema=_SCHEMA, signer=_SIGNER, clock=lambda: T0)
_ORIGINALS = {name: codec().decode(doc) for name, doc in seeds() if name in SIGNED_SEEDS}
_SIGNED = tuple((_ORIGINALS[name], _SENDER.encode(_ORIGINALS[name])) for name in SIGNED_SEEDS)
signed = st.sampled_from(_SIGNED)


def assert_not_tampered(original: schemas.Message, data: bytes) -> schemas.Message | None:
    """Refused with a protocol error, or verified as exactly ``original``."""
    try:
        message = receiver(_SCHEMA, _CERT).decode(data)
    except schemas.RemoteProtocolError as exc:
        assert 450 <= exc.response_code <= 469
        return None
    assert message.signature is schemas.SignatureState.VERIFIED
    assert message == original, "a tampered body verified"
    return message


@pytest.mark.parametrize(("original", "wire"), _SIGNED, ids=SIGNED_SEEDS)
def test_signed_seed_verifies_once(original: schemas.Message, wire: bytes) -> None:
    guarded = receiver(_SCHEMA, _CERT)
    assert guarded.decode(wire) == original
    with pytest.raises(schemas.ReplayRefused):
        guarded.decode(wire)


@EXAMPLES
@given(
    signed,
    st.lists(
        st.tuples(
            st.sampled_from(("flip", "insert", "delete")),
            st.floats(0, 1),
            st.binary(min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_byte_mutations_never_verify_a_different_message(
    pair: tuple[schemas.Message, bytes], edits: list[tuple[str, float, bytes]]
) -> None:
    original, wire = pair
    data = bytearray(wire)
    for op, where, payload in edits:
        at = min(int(where * len(data)), len(data) - 1)
        match op:
            case "flip":
                data[at] ^= payload[0] or 1
            case "insert":
                data[at:at] = payload
            case "delete":
                del data[at : at + len(payload)]
    assert_not_tampered(original, bytes(data))


def _leaves(root: etree._Element, inside: str) -> list[etree._Element]:
    holder = root.find(inside)
    assert holder is not None
    return [e for e in holder.iter(etree.Element) if len(e) == 0]


@EXAMPLES
@given(signed, st.floats(0, 1), st.text(max_size=12) | st.sampled_from(("0", "-1", "NaN", "x")))
def test_changed_body_text_is_refused(
    pair: tuple[schemas.Message, bytes], where: float, value: str
) -> None:
    _, wire = pair
    root = etree.fromstring(wire)
    leaves = _leaves(root, SIGNED_OBJECT)
    leaf = leaves[int(where * (len(leaves) - 1))]
    old = leaf.text or ""
    try:
        leaf.text = old + value if value.strip() == "" else value
    except ValueError:  # a character XML cannot carry: nothing to send
        return
    if (leaf.text or "") == old:
        return
    with pytest.raises(schemas.RemoteProtocolError):
        receiver(_SCHEMA, _CERT).decode(etree.tostring(root))


@EXAMPLES
@given(signed, st.floats(0, 1), st.sampled_from(("", "AAAA", "0", "2026-03-01T12:00:00Z", "x y")))
def test_changed_signature_text_is_refused(
    pair: tuple[schemas.Message, bytes], where: float, value: str
) -> None:
    original, wire = pair
    root = etree.fromstring(wire)
    leaves = _leaves(root, f"{{{DS}}}Signature")
    leaves[int(where * (len(leaves) - 1))].text = value
    assert_not_tampered(original, etree.tostring(root))


@EXAMPLES
@given(
    signed,
    st.sampled_from(("duplicate", "remove", "move")),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_tree_mutations_never_verify_a_different_message(
    pair: tuple[schemas.Message, bytes], op: str, which: float, where: float
) -> None:
    original, wire = pair
    root = etree.fromstring(wire)
    elements = [e for e in root.iter(etree.Element) if e.getparent() is not None]
    element = elements[int(which * (len(elements) - 1))]
    parent = element.getparent()
    assert parent is not None
    match op:
        case "duplicate":
            parent.insert(parent.index(element), copy.deepcopy(element))
        case "remove":
            parent.remove(element)
        case _:
            parent.remove(element)
            parent.insert(int(where * len(parent)), element)
    assert_not_tampered(original, etree.tostring(root))


_DS = f"{{{DS}}}"
shapes = st.one_of(
    st.tuples(st.just("references"), st.sampled_from((1, 3, 4, 7, 1000)), st.booleans()),
    st.tuples(st.just("same target"), st.just(0), st.booleans()),
    st.tuples(st.just("object"), st.sampled_from((0, 100, 40_000, 400_000)), st.booleans()),
    st.tuples(st.just("properties"), st.sampled_from((100, 40_000, 400_000)), st.booleans()),
    st.tuples(st.just("namespaces"), st.sampled_from((1, 15, 40, 2000)), st.booleans()),
    st.tuples(st.just("attributes"), st.sampled_from((1, 20, 6000)), st.booleans()),
    st.tuples(st.just("ids"), st.sampled_from((1, 30, 1000)), st.booleans()),
)


def _reshape(root: etree._Element, shape: str, size: int, flag: bool) -> etree._Element:
    """Edit the signature's shape; ``flag``: point the edit at a ds:Object of its own ("#big"),
    or for namespaces, canonicalise inclusively. Returns the edited payload's root."""
    if shape == "namespaces":
        nsmap: dict[str | None, str] = dict(root.nsmap)
        nsmap.update({f"n{i}": f"urn:f:{i}" for i in range(size)})
        flooded = etree.Element(root.tag, nsmap=nsmap)
        flooded.extend(list(root))
        info = flooded[0].find(_DS + "SignedInfo")
        assert info is not None
        for method in info.iter(_DS + "CanonicalizationMethod", _DS + "Transform"):
            method.set("Algorithm", _dsig.C14N if flag else method.get("Algorithm") or "")
        return flooded
    signature = root[0]
    info = signature.find(_DS + "SignedInfo")
    assert info is not None
    references = info.findall(_DS + "Reference")
    if flag or shape == "object":
        etree.SubElement(signature, _DS + "Object", Id="big").text = "A" * size
    match shape:
        case "references":
            for gone in references[size:]:
                info.remove(gone)
            for n in range(size - len(references)):
                extra = copy.deepcopy(references[n % 2])
                if flag:
                    extra.set("URI", "#big")
                info.append(extra)
        case "same target":
            references[1].set("URI", "#big" if flag else references[0].get("URI") or "")
        case "object":
            if flag:
                references[1].set("URI", "#big")
        case "attributes":
            transform = info.find(f"{_DS}Reference/{_DS}Transforms/{_DS}Transform")
            assert transform is not None
            etree.SubElement(transform, "{urn:pad}x", {f"a{i}": "" for i in range(size)})
        case "ids":
            extra = etree.SubElement(signature, _DS + "Object")
            for i in range(size):
                etree.SubElement(extra, "{urn:pad}x", {"Id": f"i{i}", _OADR_ID: f"o{i}"})
        case _:
            holder = signature.find(f"{_DS}Object/{_DS}SignatureProperties")
            assert holder is not None
            prop = etree.SubElement(holder, _DS + "SignatureProperty", Target="#x")
            etree.SubElement(prop, "{urn:pad}pad").text = "A" * size
    return root


@EXAMPLES
@given(signed, shapes)
def test_signature_shapes_are_refused_unworked_or_verify_as_signed(
    pair: tuple[schemas.Message, bytes], shape: tuple[str, int, bool]
) -> None:
    """Reference counts, duplicated targets, huge referenced elements, extra ds:Objects, namespace,
    attribute and id floods: with every digest and the value correct, each shape verifies as the
    signed message or is refused; a shape refused as malformed cost no signature value and no
    digest."""
    original, wire = pair
    data = resign(_reshape(etree.fromstring(wire), *shape), _SIGNER)
    with mock.patch.object(_dsig, "check_value", wraps=_dsig.check_value) as values, \
            mock.patch.object(_dsig, "check_digests", wraps=_dsig.check_digests) as digests:
        try:
            receiver(_SCHEMA, _CERT).decode(data)
        except schemas.SignatureInvalid as exc:
            event(f"{shape[0]}: {exc.reason.split(':')[0]}")
            if exc.reason.startswith("malformed signature"):
                assert values.call_count == digests.call_count == 0, exc
            return
        except schemas.RemoteProtocolError as exc:
            event(f"{shape[0]}: {type(exc).__name__}")
            assert 450 <= exc.response_code <= 469
            return
    event(f"{shape[0]}: verified")
    assert assert_not_tampered(original, data) is not None
