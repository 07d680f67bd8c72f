"""The normative OpenADR 2.0b schema set, loaded from the installed ``openleadr`` distribution.

The XSD files (oadr_20b.xsd and its 15 imports) are the OpenADR Alliance's; we do not copy them into
this repository but read them from openleadr's package data, found through the distribution's
metadata (its list of installed files): importing ``openleadr`` would pull in signxml and its
deprecation warnings for nothing. Compiling takes ~10 ms; do it once per process (or once per
:class:`SchemaSet` you pass around) and reuse it.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, distribution
from itertools import islice
from pathlib import Path
from typing import cast

from lxml import etree

from ._errors import SchemaViolation

__all__ = ["SchemaSet", "bundled_schema_dir"]

_DISTRIBUTION = "openleadr"
_ROOT_XSD = "oadr_20b.xsd"


def bundled_schema_dir() -> Path:
    """The folder of the installed openleadr distribution that holds the 2.0b XSD set, located
    from the distribution's file list without importing the package."""
    try:
        installed = distribution(_DISTRIBUTION).files or ()
    except PackageNotFoundError:
        installed = ()
    for file in installed:
        if file.parts[-2:] == ("schema", _ROOT_XSD):
            return Path(str(file.locate())).resolve().parent
    raise FileNotFoundError(f"no schema/{_ROOT_XSD} in the installed {_DISTRIBUTION} "
                            "distribution (pip install openleadr)")


class SchemaSet:
    """A compiled OpenADR 2.0b schema; validates lxml trees.

    lxml schema objects are not thread-safe for concurrent validation; give each thread its own.
    """

    __slots__ = ("_schema", "directory")

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or bundled_schema_dir()
        # The XSD files are trusted, but load them without network or DTDs all the same.
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        self._schema = etree.XMLSchema(etree.parse(str(self.directory / _ROOT_XSD), parser))

    def is_valid(self, tree: etree._Element) -> bool:
        return bool(self._schema.validate(tree))

    def validate(self, tree: etree._Element) -> None:
        """Raise :class:`SchemaViolation` naming the first problems when ``tree`` is invalid."""
        if self._schema.validate(tree):
            return
        log = cast(Iterable[etree._LogEntry], self._schema.error_log)  # iterable; stubs lag
        errors = [f"line {e.line}: {e.message}" for e in islice(log, 3)]
        raise SchemaViolation("not valid against the OpenADR 2.0b XSD: " + "; ".join(errors))
