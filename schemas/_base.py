"""The root of every payload dataclass, and how a decoded message reports its signature.

``signature`` is excluded from equality: it says how a message arrived, not what it says, so
``decode(encode(m)) == m`` holds whether or not the wire copy was signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Final, TypeVar

__all__ = ["Message", "SignatureState", "one_field_builder"]


class SignatureState(StrEnum):
    ABSENT = "absent"  # no ds:Signature on the wire
    UNVERIFIED = "unverified"  # signed, but the codec has no verifier configured
    VERIFIED = "verified"  # signed, and the signature and ReplayProtect checked out


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of the 23 OpenADR 2.0b payloads."""

    signature: SignatureState = field(default=SignatureState.ABSENT, compare=False, repr=False)


M = TypeVar("M", bound=Message)

_new: Final = object.__new__
_set_signature: Final = vars(Message)["signature"].__set__


def one_field_builder(kind: type[M]) -> Callable[[str], M]:
    """``kind(<field>=value)`` for a payload of one field beside ``signature`` (oadrPoll,
    oadrQueryRegistration, oadrRequestReregistration), for their decoders: the generated
    ``__init__`` of a frozen class sets each field through ``object.__setattr__`` (a Poll: ~5.7 k
    instructions, ~0.8 us); this sets the two slots through their member descriptors instead
    (~4 k, ~0.5 us). The object is the one the class call builds
    (tests/schemas/test_roundtrip_poll.py compares them)."""
    names = [f.name for f in fields(kind)]
    if len(names) != 2 or hasattr(kind, "__post_init__"):
        raise TypeError(f"{kind.__name__} is not a payload of one field without checks")
    set_value = vars(kind)[names[1]].__set__

    def build(value: str) -> M:
        message = _new(kind)
        _set_signature(message, SignatureState.ABSENT)
        set_value(message, value)
        return message

    return build
