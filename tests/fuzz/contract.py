"""The decode contract every fuzz test checks, and the seeds they mutate.

Contract (schemas.decode, for ANY bytes): return a typed message, or raise a
:class:`schemas.RemoteProtocolError` whose ``response_code`` lies in 450..469 (OpenADR 2.0b profile,
section 7). Nothing else escapes: no lxml, ValueError, OverflowError, crash or hang. And whatever
decodes re-encodes to bytes that decode to an equal message (round-trip stability), so a node can
relay or store what it accepted, and every period in it (anything with a dtstart and a duration)
ends at a date-time Python can hold, so no consumer adding them up overflows.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from functools import cache

import schemas
from schemas.conformance import corpus_dir


@cache
def seeds() -> tuple[tuple[str, bytes], ...]:
    """The bundled valid corpus: one document per payload type (plus CBP variants), by name."""
    paths = sorted((corpus_dir() / "valid").glob("*.xml"))
    assert len(paths) >= 23, "the valid corpus holds every 2.0b payload type"
    return tuple((path.stem, path.read_bytes()) for path in paths)


@cache
def codec() -> schemas.Codec:
    """One codec for the fuzz tests (the schema compiles once; decoding holds no state)."""
    return schemas.Codec()


def assert_contract(data: bytes, using: schemas.Codec | None = None) -> schemas.Message | None:
    """Decode ``data``: the message, or None when refused with a proper protocol error."""
    active = using or codec()
    try:
        message = active.decode(data)
    except schemas.RemoteProtocolError as exc:
        assert isinstance(exc.response_code, int)
        assert 450 <= exc.response_code <= 469, exc
        assert exc.reason, "a refusal says why"
        return None
    again = active.decode(active.encode(message))
    assert again == message, "decode(encode(decoded)) differs from decoded"
    _assert_periods_end_in_range(message)
    return message


def _assert_periods_end_in_range(value: object) -> None:
    if isinstance(value, tuple):
        for item in value:
            _assert_periods_end_in_range(item)
        return
    if not is_dataclass(value):
        return
    dtstart, duration = getattr(value, "dtstart", None), getattr(value, "duration", None)
    if dtstart is not None and duration is not None:
        dtstart + duration  # OverflowError here: decode let an unusable period through
    for field in fields(value):
        _assert_periods_end_in_range(getattr(value, field.name))
