"""The cheap ways ``schemas._dsig`` reads a signature give what the plain ways gave.

Exclusive c14n of an element inside a payload is done on a copy of its subtree, and the ``#id``
map comes from one XPath; these tests pin that the canonical bytes are the ones lxml gives for the
element where it stands (every element of every corpus document, and of a signed payload as
another implementation might indent it), and that an ``#id`` still resolves to exactly one element.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

import schemas
from schemas import _dsig
from schemas.conformance import corpus_dir
from tests.kit.clock import Clock
from tests.kit.signing import DS, OADR, POLL, T0, make_identity, pair


def _in_place(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _parsed(path: Path) -> etree._Element | None:
    try:
        return etree.fromstring(path.read_bytes())
    except etree.XMLSyntaxError:
        return None  # the malformed part of the corpus


_WELL_FORMED = [path for path in sorted(corpus_dir().rglob("*.xml")) if _parsed(path) is not None]


@pytest.mark.parametrize("path", _WELL_FORMED, ids=lambda p: p.name)
def test_detached_exclusive_c14n_is_the_in_place_one(path: Path) -> None:
    root = _parsed(path)
    assert root is not None
    for element in root.iter(etree.Element):
        assert _dsig._exclusive_detached(element) == _in_place(element), element.tag


@pytest.fixture(scope="module")
def signed_poll() -> bytes:
    ven = make_identity("ven-c14n")
    sender, _ = pair(ven.signer(), ven.cert_pem, schemas.SchemaSet(), Clock(T0))
    return sender.encode(POLL)


def test_indented_signed_payload_canonicalises_alike(signed_poll: bytes) -> None:
    root = etree.fromstring(etree.tostring(etree.fromstring(signed_poll), pretty_print=True))
    assert root[1].tail  # whitespace after each element, copied along with it
    for element in root.iter(etree.Element):
        assert _dsig._exclusive_detached(element) == _in_place(element), element.tag


def test_an_id_on_two_elements_is_refused(signed_poll: bytes) -> None:
    root = etree.fromstring(signed_poll)
    next(root.iter(OADR + "oadrPoll")).set(OADR + "Id", "oadrSignedObject")
    with pytest.raises(schemas.SignatureInvalid, match=r"'#oadrSignedObject' matches 2 elements"):
        _dsig.read(root, root[0])


def test_one_element_naming_an_id_twice_resolves_once(signed_poll: bytes) -> None:
    """The same value as Id and oadr:Id is one element: the check goes on to its digest."""
    root = etree.fromstring(signed_poll)
    properties = next(root.iter(DS + "SignatureProperties"))
    properties.set(OADR + "Id", properties.get("Id") or "")
    with pytest.raises(schemas.SignatureInvalid, match=r"digest mismatch.*#oadrReplayProtect"):
        _dsig.check_digests(_dsig.read(root, root[0]))
