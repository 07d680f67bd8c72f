"""GCP pseudonyms from a pseudonymisation entity, so the TSO can see one connection point offered
by two aggregators without anybody who sees the pseudonyms being able to reverse them.

The problem: the TSO must refuse a grid connection point (GCP) offered twice, by two aggregators.
For that the two aggregators' pseudonyms of one GCP must be equal, so they cannot come from each
aggregator's own key and salt. But EANs are enumerable (871 + 15 digits, and far fewer in use):
an unkeyed hash, or a key any aggregator or the TSO holds, lets that party hash every EAN and read
the connection point back (a dictionary attack).

The choice: a *pseudonymisation entity* (PE) with its own secret key, held by neither the
aggregators nor the TSO, computes every GCP pseudonym. In the Netherlands the central access
register (C-AR), which already holds every EAN and who may act on it, can play this part.
``K = HKDF-SHA256(pe_key, salt=b"cbp-gcp-v1", info="R|gcp|E")`` per recipient R and month E,
and ``pseudonym = "psn1_" + base32(HMAC-SHA256(K, EAN)[:16]).lower()``: the same shape as every
other pseudonym, equal across aggregators for one GCP and month, unlinkable across months and
recipients. The aggregators send the PE the EAN (which it knows anyway) and forward the answer;
the TSO compares pseudonyms. Neither can test a guessed EAN without asking the PE, and the PE
answers an aggregator only for the EANs it holds a mandate for (``mandates``), so an aggregator
cannot use it as an oracle over all EANs; every answer is counted per aggregator.

What it costs: the PE learns which aggregator asks about which EAN each month (the C-AR records
that relation already), and anyone the PE answers can recompute a GCP pseudonym from the EAN
(so erasure cannot make a GCP pseudonym unrecomputable: its notice lists them and the TSO
deletes them, :mod:`privacy.erasure`). :class:`PseudonymisationEntity` is the library form,
with its key from a file of its own; a deployment puts the same computation behind a service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyUnavailable, NoMandate
from .keys import KEY_BYTES, parse_key_text
from .pseudonym import validate_month

__all__ = ["GcpPseudonyms", "PseudonymisationEntity"]

_SALT: Final = b"cbp-gcp-v1"
_EAN: Final = re.compile(r"\d{18}")


@runtime_checkable
class GcpPseudonyms(Protocol):
    """Where a vault gets GCP pseudonyms from: the PE library, or a client of its service."""

    def gcp_pseudonym(self, ean: str, recipient: str, month: str, *, aggregator: str) -> str:
        ...


class PseudonymisationEntity:
    """The PE: one secret key, a mandate check, a count of answers per aggregator."""

    __slots__ = ("_key", "_mandates", "answers")

    def __init__(self, key: bytes, *, mandates: Callable[[str, str], bool] | None = None) -> None:
        """``mandates(aggregator, ean)`` says whether the aggregator may ask about the EAN (the
        access register's record); None answers every aggregator (a test or a closed setup)."""
        if len(key) != KEY_BYTES:
            raise KeyUnavailable(f"the pseudonymisation entity's key must be {KEY_BYTES} bytes")
        self._key = key
        self._mandates = mandates
        self.answers: dict[str, int] = {}

    @classmethod
    def from_key_file(cls, path: Path, *,
                      mandates: Callable[[str, str], bool] | None = None) -> PseudonymisationEntity:
        """The newest key of a ``version:hex`` key file kept by the PE alone."""
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyUnavailable(f"cannot read PE key file {path}: {type(exc).__name__}") from None
        keys = parse_key_text(text.splitlines(), source=f"PE key file {path}")
        return cls(keys[max(keys)].secret, mandates=mandates)

    def gcp_pseudonym(self, ean: str, recipient: str, month: str, *, aggregator: str) -> str:
        if _EAN.fullmatch(ean) is None:
            raise ValueError("ean must be 18 digits")
        if not recipient or "|" in recipient:
            raise ValueError(f"recipient must be non-empty without '|', got {recipient!r}")
        if self._mandates is not None and not self._mandates(aggregator, ean):
            raise NoMandate(f"aggregator {aggregator!r} holds no mandate for this EAN")
        info = f"{recipient}|gcp|{validate_month(month)}".encode()
        scope = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(self._key)
        digest = hmac.new(scope, ean.encode("ascii"), hashlib.sha256).digest()[:16]
        self.answers[aggregator] = self.answers.get(aggregator, 0) + 1
        return "psn1_" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()
