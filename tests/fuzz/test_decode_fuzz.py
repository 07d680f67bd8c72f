"""Fuzzing schemas.decode with hypothesis: random input and mutated corpus documents.

Every test checks the contract in :mod:`tests.fuzz.contract`: a typed message that survives
``decode(encode(m)) == m``, or a RemoteProtocolError with a 450..469 code, never anything else.
No per-example deadline (wall-clock limits belong in bench/); each test runs a modest number of
examples so the whole module takes a few seconds. Long runs belong to
``tests/fuzz/atheris_decode.py``.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import schemas

from .contract import assert_contract, codec, seeds

EXAMPLES = settings(max_examples=60)

# Element texts that have tripped XML codecs: number edges, NaN/INF, durations with signs, years
# outside 1..9999, leap seconds, offsets, non-ASCII digits, whitespace, markup, entities.
NASTY_TEXTS = (
    "",
    " ",
    "\t\n",
    "0",
    "-0",
    "+1",
    "-1",
    "1.5",
    "2147483648",
    "-2147483649",
    "99999999999999999999999999999999",
    "1e400",
    "-1e400",
    "1e-400",
    "1E5",
    "0x10",
    "NaN",
    "nan",
    "INF",
    "-INF",
    "Infinity",
    "PT0S",
    "-PT5M",
    "+PT1H",
    "P",
    "PT",
    "P1Y",
    "P1M",
    "P1W",
    "PT0.5S",
    "P999999999D",
    "-P999999999D",
    "P36525D",
    "P36526D",
    "-P1D",
    "P5218W",
    "P1000000000D",
    "P142857143W",
    "PT99999999999999999999S",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "2026-01-01T23:59:60Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:00.1234567Z",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "2026-01-01T00:00:00",
    "١٢٣",
    "\uff11\uff12",
    "²",
    "true",
    "false",
    "TRUE",
    "000123",
    "x" * 300,
    "\u200b",
    "é",
)
RAW_MARKUP = (
    "<a>",
    "</oadrSignedObject>",
    "<![CDATA[1]]>",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#xD800;",
    "&bogus;",
    "<?pi x?>",
    "<!-- c -->",
    "<!DOCTYPE x>",
    "<!ENTITY e 'x'>",
    "]]>",
    "\x00",
    "\xff",
)
XML_ALPHABET = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc"), include_characters="\t\n\r"
)
seed_docs = st.sampled_from(seeds()).map(lambda named: named[1])


def _leaves(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter(etree.Element) if len(e) == 0 and e.getparent() is not None]


@EXAMPLES
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    assert_contract(data)


@EXAMPLES
@given(st.text(max_size=512), st.sampled_from(("", "<?xml version='1.0'?>", "<", "\ufeff")))
def test_random_text(text: str, prefix: str) -> None:
    assert_contract((prefix + text).encode("utf-8", "surrogatepass"))


@EXAMPLES
@given(
    seed_docs,
    st.lists(
        st.tuples(
            st.sampled_from(("flip", "insert", "delete")),
            st.floats(0, 1),
            st.binary(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_byte_mutations(doc: bytes, edits: list[tuple[str, float, bytes]]) -> None:
    data = bytearray(doc)
    for op, where, payload in edits:
        at = min(int(where * len(data)), max(len(data) - 1, 0))
        match op:
            case "flip" if data:
                data[at] ^= payload[0] or 1
            case "insert":
                data[at:at] = payload
            case "delete" if data:
                del data[at : at + len(payload)]
    assert_contract(bytes(data))


@EXAMPLES
@given(seed_docs, st.floats(0, 1))
def test_truncations(doc: bytes, fraction: float) -> None:
    assert_contract(doc[: int(fraction * len(doc))])


@EXAMPLES
@given(
    seed_docs,
    st.lists(
        st.tuples(
            st.floats(0, 1), st.sampled_from(NASTY_TEXTS) | st.text(XML_ALPHABET, max_size=9)
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_element_text_replaced(doc: bytes, replacements: list[tuple[float, str]]) -> None:
    root = etree.fromstring(doc)
    leaves = _leaves(root)
    for where, value in replacements:
        leaves[int(where * (len(leaves) - 1))].text = value  # lxml escapes: the value is data
    assert_contract(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@EXAMPLES
@given(seed_docs, st.floats(0, 1), st.sampled_from(RAW_MARKUP + NASTY_TEXTS))
def test_raw_markup_in_element_text(doc: bytes, where: float, raw: str) -> None:
    root = etree.fromstring(doc)
    leaves = _leaves(root)
    leaves[int(where * (len(leaves) - 1))].text = "FUZZ-MARKER"
    data = etree.tostring(root, encoding="UTF-8").replace(
        b"FUZZ-MARKER", raw.encode("utf-8", "surrogatepass")
    )
    message = assert_contract(data)
    if "<!D" in raw or "<!E" in raw:
        assert message is None  # refused before libxml2 saw it


@EXAMPLES
@given(
    seed_docs,
    st.lists(
        st.tuples(
            st.sampled_from(("duplicate", "remove", "move")), st.floats(0, 1), st.floats(0, 1)
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_tree_mutations(doc: bytes, edits: list[tuple[str, float, float]]) -> None:
    root = etree.fromstring(doc)
    for op, which, where in edits:
        elements = [e for e in root.iter(etree.Element) if e.getparent() is not None]
        if not elements:
            break
        element = elements[int(which * (len(elements) - 1))]
        parent = element.getparent()
        assert parent is not None
        match op:
            case "duplicate":
                parent.insert(parent.index(element), copy.deepcopy(element))
            case "remove":
                parent.remove(element)
            case "move":
                parent.remove(element)
                parent.insert(int(where * len(parent)), element)
    assert_contract(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@EXAMPLES
@given(seed_docs, st.floats(0, 1), st.sampled_from((b"<!DOCTYPE", b"<!doctype", b"<!ENTITY")))
def test_markup_declaration_anywhere_is_hostile(doc: bytes, where: float, opener: bytes) -> None:
    at = int(where * len(doc))
    with pytest.raises(schemas.HostileDocument):
        codec().decode(doc[:at] + opener + b" x []>" + doc[at:])


@pytest.mark.parametrize(("name", "doc"), seeds(), ids=[name for name, _ in seeds()])
def test_every_seed_decodes_and_round_trips(name: str, doc: bytes) -> None:
    assert assert_contract(doc) is not None, name
