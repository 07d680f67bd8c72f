"""Versioned master keys and where they come from: a file or an environment variable, never code.

Owns :class:`MasterKey`, the :class:`KeyProvider` protocol (a KMS or HSM adapter implements the
same three methods) and two providers: :class:`FileKeyProvider` and :class:`EnvKeyProvider`.

Key text format (file lines or comma-separated in the variable): ``<version>:<64 hex digits>``,
e.g. ``1:00010203...1f``. Blank lines and ``#`` comments are ignored in files. The highest version
is current; older versions stay readable so vault records and pseudonyms made with them can still
be decrypted and resolved. Invariants: every key is exactly 32 bytes; versions are positive and
unique; a key's bytes never appear in ``repr`` or in error messages.

A master key is never used directly: :func:`domain_key` derives one independent key per domain
(HKDF-SHA256, salt ``cbp-keys-v2``, info = the domain name): ``wrap`` seals the prosumers' data
keys (:mod:`privacy.sealing`), ``integrity`` authenticates consent rows, pseudonym epochs and the
audit chain, ``pseudonym`` is the root of the pseudonym keys (:mod:`privacy.pseudonym`). A key of
one domain tells nothing about another's.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyUnavailable

__all__ = [
    "DEFAULT_KEY_ENV",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyDomain",
    "KeyProvider",
    "MasterKey",
    "domain_key",
    "new_key_line",
    "parse_key_text",
]

DEFAULT_KEY_ENV: Final = "CROWDFLEX_PSEUDONYM_KEYS"
KEY_BYTES: Final = 32
_DOMAIN_SALT: Final = b"cbp-keys-v2"

KeyDomain = Literal["wrap", "integrity", "pseudonym"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MasterKey:
    version: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.version < 1:
            raise KeyUnavailable(f"key version must be >= 1, got {self.version}")
        if len(self.secret) != KEY_BYTES:
            raise KeyUnavailable(f"key version {self.version} is not {KEY_BYTES} bytes")


@runtime_checkable
class KeyProvider(Protocol):
    """Where master keys come from. Implement these three for a KMS or an HSM."""

    def current(self) -> MasterKey:
        """The key new pseudonyms and new vault records use."""
        ...

    def get(self, version: int) -> MasterKey:
        """A specific version; raises :class:`KeyUnavailable` when unknown."""
        ...

    def versions(self) -> tuple[int, ...]:
        """Every version available, oldest first."""
        ...


class _StaticKeys:
    """Keys loaded once into memory; the base of the file and environment providers."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[int, MasterKey]) -> None:
        if not keys:
            raise KeyUnavailable("no master key configured")
        self._keys = dict(keys)

    def current(self) -> MasterKey:
        return self._keys[max(self._keys)]

    def get(self, version: int) -> MasterKey:
        try:
            return self._keys[version]
        except KeyError:
            raise KeyUnavailable(f"master key version {version} is not available") from None

    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))


def parse_key_text(entries: list[str], *, source: str) -> dict[int, MasterKey]:
    """Parse ``version:hex`` entries; ``source`` names the origin in errors (never the key)."""
    keys: dict[int, MasterKey] = {}
    for number, raw in enumerate(entries, start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        version_text, sep, hex_text = entry.partition(":")
        try:
            if not sep:
                raise ValueError
            version = int(version_text.strip().removeprefix("v"))
            secret = bytes.fromhex(hex_text.strip())
        except ValueError:
            raise KeyUnavailable(
                f"{source}: entry {number} is not '<version>:<64 hex digits>'"
            ) from None
        if version in keys:
            raise KeyUnavailable(f"{source}: key version {version} appears twice")
        keys[version] = MasterKey(version=version, secret=secret)
    if not keys:
        raise KeyUnavailable(f"{source}: no master key found")
    return keys


class FileKeyProvider(_StaticKeys):
    """Keys from a file outside the repository (mode 0600 recommended; see ``new_key_line``)."""

    __slots__ = ()

    def __init__(self, path: Path) -> None:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyUnavailable(f"cannot read key file {path}: {type(exc).__name__}") from None
        super().__init__(parse_key_text(text.splitlines(), source=f"key file {path}"))


class EnvKeyProvider(_StaticKeys):
    """Keys from an environment variable: ``1:<hex>,2:<hex>``."""

    __slots__ = ()

    def __init__(
        self, variable: str = DEFAULT_KEY_ENV, environ: Mapping[str, str] | None = None
    ) -> None:
        value = (os.environ if environ is None else environ).get(variable)
        if not value:
            raise KeyUnavailable(f"environment variable {variable} is not set")
        super().__init__(parse_key_text(value.split(","), source=f"variable {variable}"))


def new_key_line(version: int) -> str:
    """A fresh random key as one ``version:hex`` line (for a key file kept out of the repo)."""
    return f"{version}:{secrets.token_bytes(KEY_BYTES).hex()}\n"


def domain_key(master: MasterKey, domain: KeyDomain) -> bytes:
    """The 32-byte key of one domain under one master key version."""
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_DOMAIN_SALT, info=domain.encode()
    ).derive(master.secret)
