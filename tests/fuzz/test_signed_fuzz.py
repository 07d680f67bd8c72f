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

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import schemas

from .contract import codec, seeds
from .signing import T0, identity, receiver

# Only a hang fails on time: one example takes ~0.1 ms, and a loaded 2-core machine can
# stretch that 1,000-fold; 30 s per example is a liveness bound, not a speed check.
EXAMPLES = settings(max_examples=40, deadline=30_000)
SIGNED_SEEDS = ("oadrPoll", "oadrDistributeEvent", "oadrUpdateReport", "oadrCreatedEvent")
DS = "http://www.w3.org/2000/09/xmldsig#"
SIGNED_OBJECT = "{http://openadr.org/oadr-2.0b/2012/07}oadrSignedObject"

_KEY, _CERT = identity()
_SCHEMA = schemas.SchemaSet()
_SENDER = schemas.Codec(schema=_SCHEMA, signer=schemas.Signer(_KEY, _CERT), clock=lambda: T0)
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
