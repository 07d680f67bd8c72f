"""The root of every payload dataclass, and how a decoded message reports its signature.

``signature`` is excluded from equality: it says how a message arrived, not what it says, so
``decode(encode(m)) == m`` holds whether or not the wire copy was signed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Message", "SignatureState"]


class SignatureState(StrEnum):
    ABSENT = "absent"  # no ds:Signature on the wire
    UNVERIFIED = "unverified"  # signed, but the codec has no verifier configured
    VERIFIED = "verified"  # signed, and the signature and ReplayProtect checked out


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of the 23 OpenADR 2.0b payloads."""

    signature: SignatureState = field(default=SignatureState.ABSENT, compare=False, repr=False)
