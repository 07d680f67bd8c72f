"""An XSD check independent of our codec: a plain lxml XMLSchema over openleadr's XSD files."""

from __future__ import annotations

from functools import cache
from importlib.resources import as_file, files

from lxml import etree


@cache
def _oracle() -> etree.XMLSchema:
    with as_file(files("openleadr").joinpath("schema", "oadr_20b.xsd")) as path:
        return etree.XMLSchema(etree.parse(str(path)))


def assert_xsd_valid(wire: bytes) -> None:
    schema = _oracle()
    tree = etree.fromstring(wire)
    assert schema.validate(tree), f"{schema.error_log}\n{wire.decode()}"
