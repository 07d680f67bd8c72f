"""What a signature may cost: its shape is checked before any digest or signature value.

Every hostile payload here carries correct digests and a correct signature value from a trusted
key (``tests.fuzz.signing.resign``), so only the shape rules can refuse it. The work is counted by
wrapping the two costly steps the Verifier takes, ``_dsig.check_value`` (one public-key operation
over SignedInfo) and ``_dsig.check_digests`` (canonicalise and hash every referenced element).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from lxml import etree

import schemas
from schemas import _dsig
from tests.fuzz.signing import reference_bomb, resign
from tests.kit.clock import Clock
from tests.kit.signing import DS, POLL, T0, make_identity

_VEN = make_identity("ven-bounds")
_SIGNER = _VEN.signer()


@dataclass
class Work:
    """Nonces of the signatures each costly step ran on."""

    values: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    seen = Work()

    def counting(step: Callable[..., None], into: list[str]) -> Callable[..., None]:
        def counted(parts: _dsig.SignedParts, *args: Any) -> None:
            into.append(parts.nonce)
            step(parts, *args)
        return counted

    monkeypatch.setattr(_dsig, "check_value", counting(_dsig.check_value, seen.values))
    monkeypatch.setattr(_dsig, "check_digests", counting(_dsig.check_digests, seen.digests))
    yield seen


def _receiver() -> schemas.Codec:
    return schemas.Codec(verifier=schemas.Verifier(_VEN.cert_pem), clock=Clock(T0))


def _signed() -> etree._Element:
    return etree.fromstring(schemas.Codec(signer=_SIGNER, clock=Clock(T0)).encode(POLL))


def _refused(wire: bytes, match: str) -> None:
    with pytest.raises(schemas.SignatureInvalid, match=match) as caught:
        _receiver().decode(wire)
    assert caught.value.response_code == 459


def test_an_honest_signature_costs_one_value_check_and_one_digest_pass(work: Work) -> None:
    assert _receiver().decode(etree.tostring(_signed())).signature is (
        schemas.SignatureState.VERIFIED)
    assert len(work.values) == 1 and len(work.digests) == 1


def test_the_reviews_reference_bomb_is_refused_before_any_digest_or_value(work: Work) -> None:
    bomb = reference_bomb(etree.tostring(_signed()), _SIGNER)
    assert len(bomb) > 600_000
    _refused(bomb, r"malformed signature: 1000 ds:Reference elements; .*exactly 2")
    assert work == Work()


@pytest.mark.parametrize("count", [1, 3, 4])  # the XSD wants at least one
def test_any_reference_count_but_two_is_refused_unworked(count: int, work: Work) -> None:
    root = _signed()
    info = root.find(f"{DS}Signature/{DS}SignedInfo")
    assert info is not None
    references = info.findall(DS + "Reference")
    for extra in range(count - 2):
        copied = etree.fromstring(etree.tostring(references[extra % 2]))
        info.append(copied)
    for gone in references[count:]:
        info.remove(gone)
    _refused(resign(root, _SIGNER), rf"{count} ds:Reference elements")
    assert work == Work()


def test_two_references_to_one_element_are_refused_unworked(work: Work) -> None:
    root = _signed()
    references = root.findall(f"{DS}Signature/{DS}SignedInfo/{DS}Reference")
    references[1].set("URI", references[0].get("URI") or "")
    _refused(resign(root, _SIGNER), r"cover the same element")
    assert work == Work()


@pytest.mark.parametrize("where", ["covered", "extra object"])
def test_a_huge_element_in_the_signature_is_refused_unworked(where: str, work: Work) -> None:
    """400 KB inside the referenced SignatureProperties, or in a ds:Object of its own."""
    root = _signed()
    signature = root[0]
    if where == "covered":
        holder = signature.find(f"{DS}Object/{DS}SignatureProperties")
        assert holder is not None
        prop = etree.SubElement(holder, DS + "SignatureProperty", Target="#x")
        etree.SubElement(prop, "{urn:pad}pad").text = "A" * 400_000
    else:
        etree.SubElement(signature, DS + "Object", Id="big").text = "A" * 400_000
    _refused(resign(root, _SIGNER),
             r"ds:Signature larger than 64 nodes \(elements and attributes\) or 32768 characters")
    assert work == Work()


def test_a_bad_value_is_found_before_any_digest(work: Work) -> None:
    root = _signed()
    value = root.find(f"{DS}Signature/{DS}SignatureValue")
    assert value is not None
    raw = bytearray(base64.b64decode(value.text or ""))
    raw[5] ^= 0xFF
    value.text = base64.b64encode(bytes(raw)).decode()
    _refused(etree.tostring(root), r"bad signature value")
    assert len(work.values) == 1 and work.digests == []


def test_many_small_nodes_in_the_signature_are_refused_unworked(work: Work) -> None:
    root = _signed()
    padding = etree.SubElement(root[0], DS + "Object", Id="pad")
    for _ in range(100):
        etree.SubElement(padding, "{urn:pad}p")
    _refused(resign(root, _SIGNER), r"ds:Signature larger than 64 nodes")
    assert work == Work()


def test_an_untrusted_signer_is_refused_before_any_digest(work: Work) -> None:
    stranger = make_identity("stranger-bounds")
    wire = schemas.Codec(signer=stranger.signer(), clock=Clock(T0)).encode(POLL)
    _refused(wire.replace(b">000123<", b">000666<"), r"untrusted certificate")
    assert len(work.values) == 1 and work.digests == []
