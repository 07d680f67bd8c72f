"""The error trees drawn in the package docstrings are the classes' real bases, and complete.

Every exception class defined in schemas, tomlconfig, devpki, vtn, ven, privacy and cbp derives
from ``schemas.CrowdflexError`` through its package's root; each package draws its own classes
(schemas in ``schemas._errors``, the roots of the others in ``schemas``' docstring); a class
drawn under a parent has that parent among its direct bases; "also a ValueError" is written
exactly where the class is one; and no two error classes share a name (one word per concept).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

import pytest

from cbp.errors import CbpError
from devpki import DevpkiError
from privacy import PrivacyError
from schemas import CrowdflexError
from tomlconfig import ConfigError
from ven import VenError
from vtn.errors import VtnError

PACKAGES = ("schemas", "tomlconfig", "devpki", "vtn", "ven", "privacy", "cbp")
# Each package's root.
ROOTS: dict[str, type[CrowdflexError]] = {
    "schemas": CrowdflexError, "tomlconfig": ConfigError, "devpki": DevpkiError, "vtn": VtnError,
    "ven": VenError, "privacy": PrivacyError, "cbp": CbpError}
# Defined in a file whose owner is changing it now; it moves under CbpError there.
PENDING: set[str] = set()

_ROOT = re.compile(r"^ {4}([A-Z]\w+)")
_NODE = re.compile(r"\+-- ([A-Z]\w+)")


@dataclass(frozen=True, slots=True)
class Drawn:
    name: str
    parent: str | None
    text: str


def _modules(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    names = [info.name for info in pkgutil.walk_packages(root.__path__, f"{package}.")
             if ".migrations" not in info.name and not info.name.endswith("__main__")]
    return [root, *(importlib.import_module(name) for name in names)]


def _defined(package: str) -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in _modules(package):
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, BaseException)
                    and value.__module__ == module.__name__):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


ALL = {path: cls for package in PACKAGES for path, cls in _defined(package).items()}
BY_NAME = {cls.__name__: cls for cls in ALL.values()}


def _trees(doc: str) -> list[Drawn]:
    """The nodes of every ``::`` block in ``doc`` that draws a tree (has ``+--``)."""
    drawn: list[Drawn] = []
    for block in re.split(r"::\n\n", doc)[1:]:
        lines = []
        for line in block.splitlines():
            if line.strip() and not line.startswith("    "):
                break
            lines.append(line)
        if not any("+--" in line for line in lines):
            continue
        path: list[str] = []
        texts: list[list[str]] = []
        for line in lines:
            node, root = _NODE.search(line), _ROOT.match(line)
            if node is not None:
                depth = (node.start() - 4) // 4 + 1
                del path[depth:]
                drawn_parent = path[depth - 1]
                path.append(node.group(1))
                texts.append([node.group(1), drawn_parent, line[node.end():]])
            elif root is not None:
                path[:] = [root.group(1)]
                texts.append([root.group(1), "", line[root.end():]])
            elif texts:
                texts[-1][2] += " " + line.strip(" |")
        drawn += [Drawn(name, parent or None, " ".join(text.split()))
                  for name, parent, text in texts]
    return drawn


def _doc(package: str) -> str:
    module = importlib.import_module("schemas._errors" if package == "schemas" else package)
    return module.__doc__ or ""


def test_every_error_class_derives_from_crowdflex_error_and_has_its_own_name() -> None:
    outside = {path for path, cls in ALL.items() if not issubclass(cls, CrowdflexError)}
    assert outside == PENDING
    assert len(BY_NAME) == len(ALL)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_error_class_derives_from_its_package_root(package: str) -> None:
    root, defined = ROOTS[package], _defined(package)
    assert root.__module__.split(".")[0] == package
    assert {path for path, cls in defined.items() if not issubclass(cls, root)} == set()


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_draws_its_classes_with_their_real_bases(package: str) -> None:
    drawn = _trees(_doc(package))
    classes = {BY_NAME[node.name] for node in drawn}
    assert {cls for cls in classes if cls.__module__.split(".")[0] == package} == {
        cls for path, cls in _defined(package).items() if path not in PENDING}
    for node in (node for node in drawn if node.parent is not None):
        cls, parent = BY_NAME[node.name], BY_NAME[node.parent or ""]
        assert parent in cls.__bases__, f"{node.name} is drawn under {node.parent}"
        assert issubclass(cls, ValueError) == ("also a ValueError" in node.text), node.name


def test_the_root_docstring_draws_one_root_per_package() -> None:
    import schemas

    drawn = _trees(schemas.__doc__ or "")
    assert [(n.name, n.parent) for n in drawn] == [
        ("CrowdflexError", None), ("ConfigError", "CrowdflexError"),
        ("DevpkiError", "CrowdflexError"),
        ("VtnError", "CrowdflexError"), ("VenError", "CrowdflexError"),
        ("PrivacyError", "CrowdflexError"), ("CbpError", "CrowdflexError")]
    for node in drawn[1:]:
        cls = BY_NAME[node.name]
        assert cls.__bases__[0] is CrowdflexError
        assert issubclass(cls, ValueError) == ("also a ValueError" in node.text)
        assert cls.__module__.split(".")[0] in node.text
