"""Reading a TOML configuration file into typed values: the one loader of every configuration
file (the VTN's, the VEN's, the CBP roles', the privacy table); no other module parses TOML
(the message layer's conformance manifest aside: it sits below this package).

A :class:`Table` hands out each key through a typed getter (string, integer in a range, number,
decimal, seconds, flag, path, list of strings, choice of an enum, sub-table, list of tables, or
a sub-table whole for a loader of its own). A value of the wrong type or
out of range is a :class:`ConfigError` naming the file, the key and what is expected, and
:meth:`Table.finish` refuses every key nobody took (a typo must not silently fall back to a
default).

Invariants: paths are relative to the file's directory; a path that must exist (a certificate, a
key) is checked when the file is read, so a missing one is refused with its key and full path
before any server starts, never as a bare ``[Errno 2]`` later. Booleans are not numbers (TOML
keeps them apart; so does this), and TOML has no null, so an optional setting is one left out.

Its one error, under the message layer's root (the ``crowdflex`` commands catch ValueError
around reading configuration, cbp.cli)::

    CrowdflexError (schemas)
    +-- ConfigError               a file unreadable, or a key unknown, ill-typed or out of
                                  range; also a ValueError
"""

from __future__ import annotations

import contextlib
import tomllib
import types
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

from schemas import CrowdflexError

__all__ = ["ConfigError", "Table", "document", "plain_type", "read_file"]

_E = TypeVar("_E", bound=Enum)


class ConfigError(CrowdflexError, ValueError):
    """A configuration file is unreadable, or one of its keys is unknown, ill-typed or out of
    range; the message names the file, the key and what is expected."""


def read_file(path: Path) -> dict[str, Any]:
    """The TOML file at ``path``, parsed (its keys are read by a :class:`Table`)."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return data


def document(path: Path) -> Table:
    """The TOML file at ``path`` as its top-level :class:`Table`: errors name the file, relative
    paths are taken from its directory."""
    return Table(read_file(path), source=str(path), base=path.parent)


class Table:
    """One TOML table being read; ``name`` is its dotted key in the file (``""`` for the top)."""

    def __init__(self, data: Mapping[str, Any], *, source: str, base: Path,
                 name: str = "") -> None:
        self.source = source
        self.base = base
        self._name = name
        self._left = dict(data)
        self._tables: list[Table] = []

    def key(self, key: str) -> str:
        return f"{self._name}.{key}" if self._name else key

    def error(self, key: str, expected: str, value: Any = None) -> ConfigError:
        got = "" if value is None else f", got {value!r:.80}"
        return ConfigError(f"{self.source}: {self.key(key)}: expected {expected}{got}")

    def has(self, key: str) -> bool:
        return key in self._left

    def __bool__(self) -> bool:
        """Whether any key is left to take."""
        return bool(self._left)

    def _take(self, key: str) -> Any:
        if key not in self._left:
            raise ConfigError(f"{self.source}: {self.key(key)}: required, and missing")
        return self._left.pop(key)

    def string(self, key: str) -> str:
        value = self._take(key)
        if not isinstance(value, str) or not value:
            raise self.error(key, "a non-empty string", value)
        return value

    def integer(self, key: str, *, low: int = 0, high: int | None = None) -> int:
        value = self._take(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (
                high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise self.error(key, f"an integer {span}", value)
        return value

    def number(self, key: str, *, positive: bool = False) -> float:
        value = self._take(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                value > 0 if positive else value >= 0) or value != value or value == float("inf"):
            raise self.error(key, "a positive number" if positive else "a number of at least 0",
                             value)
        return float(value)

    def decimal(self, key: str) -> Decimal:
        """An exact amount: a string such as ``"212.40"`` (TOML floats are binary) or an integer."""
        value = self._take(key)
        amount = None
        if isinstance(value, str | int) and not isinstance(value, bool):
            with contextlib.suppress(InvalidOperation):
                amount = Decimal(value)
        if amount is None or not amount.is_finite():
            raise self.error(key, 'a decimal number as a string ("212.40") or an integer', value)
        return amount

    def seconds(self, key: str) -> timedelta:
        value = self._take(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
            raise self.error(key, "a positive number of seconds", value)
        return timedelta(seconds=value)

    def flag(self, key: str) -> bool:
        value = self._take(key)
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._take(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, "a list of non-empty strings", value)
        return tuple(value)

    def path(self, key: str, *, exists: bool = False) -> Path:
        """A path relative to the file's directory; with ``exists``, of a file that exists."""
        return self._path(key, self.string(key), exists)

    def paths(self, key: str, *, exists: bool = False) -> tuple[Path, ...]:
        return tuple(self._path(key, item, exists) for item in self.strings(key))

    def _path(self, key: str, text: str, exists: bool) -> Path:
        path = (self.base / text).resolve()
        if exists and not path.is_file():  # the whole path: the reader must find it
            raise ConfigError(f"{self.source}: {self.key(key)}: no such file {path}")
        return path

    def choice(self, key: str, kind: type[_E]) -> _E:
        value = self._take(key)
        try:
            return kind(value)
        except ValueError:
            allowed = " or ".join(repr(member.value) for member in kind)
            raise self.error(key, allowed, value) from None

    def table(self, key: str) -> Table:
        """The sub-table ``[key]`` (empty when absent); its keys are checked by :meth:`finish`."""
        value = self._left.pop(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"a table [{self.key(key)}]", value)
        table = Table(value, source=self.source, base=self.base, name=self.key(key))
        self._tables.append(table)
        return table

    def tables(self, key: str) -> tuple[Table, ...]:
        """The array of tables ``[[key]]`` (empty when absent); :meth:`finish` checks each."""
        value = self._left.pop(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, f"an array of tables [[{self.key(key)}]]", value)
        found = tuple(Table(item, source=self.source, base=self.base,
                            name=f"{self.key(key)}[{index}]")
                      for index, item in enumerate(value))
        self._tables.extend(found)
        return found

    def mapping(self, key: str) -> dict[str, Any]:
        """The sub-table ``[key]`` whole (empty when absent), for a loader that checks its keys
        itself (:func:`vtn.config.parse_config` takes a role's ``[vtn]`` so)."""
        value = self._left.pop(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"a table [{self.key(key)}]", value)
        return dict(value)

    def remaining(self) -> tuple[str, ...]:
        """The keys not taken yet, for a table whose keys are names (``[privacy.legal_basis]``)."""
        return tuple(self._left)

    def typed(self, key: str, hint: Any) -> Any:
        """The value of ``key`` checked against a dataclass field's type: ``str``, ``int`` or
        ``float`` (at least 0), ``bool``, or one of them ``| None``."""
        kind = plain_type(hint)
        if kind is bool:
            return self.flag(key)
        if kind is int:
            return self.integer(key)
        if kind is float:
            return self.number(key)
        if kind is str:
            return self.string(key)
        raise TypeError(f"{key}: {hint!r} is not a plain TOML type")

    def finish(self) -> None:
        """Refuse the keys nobody took, in this table and the sub-tables taken from it."""
        unknown = sorted(self._unknown())
        if unknown:
            raise ConfigError(f"{self.source}: unknown key{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(unknown)}")

    def _unknown(self) -> list[str]:
        found = [self.key(key) for key in self._left]
        for table in self._tables:
            found.extend(table._unknown())
        return found


def plain_type(hint: Any) -> type | None:
    """``str``, ``int``, ``float`` or ``bool`` when ``hint`` is one of them (or it ``| None``),
    else None: the field is not one plain TOML value."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(args) != 1:
            return None
        hint = args[0]
    return hint if hint in (str, int, float, bool) else None
