"""The codec benchmark's messages (``bench/_codec_messages.py``): every 2.0b payload type, each
XSD-valid as openleadr writes it, and read by our codec without losing what openleadr reads."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import schemas
from bench._codec_messages import PAYLOADS, UNWRITABLE, openleadr_message, without_report_subject
from schemas._families import DECODERS


def test_every_payload_type_has_a_message() -> None:
    assert len(PAYLOADS) == 23
    assert set(PAYLOADS) == {tag.rpartition("}")[2] for tag in DECODERS}
    assert set(UNWRITABLE) <= set(PAYLOADS)


def _openleadr_reads(data: bytes) -> tuple[str, Any]:
    from openleadr.messaging import parse_message

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_message(data)


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_message_is_xsd_valid_and_round_trips(kind: str) -> None:
    codec = schemas.default_codec()
    data = openleadr_message(kind)
    codec.schema.validate(codec.parse(data))  # raises SchemaViolation naming the errors
    message = codec.decode(data)
    written = codec.encode(message)
    assert codec.decode(written) == message
    # what openleadr reads from our bytes is what it read from its own; the one part our model
    # does not keep (a report description's reportSubject endDeviceAsset) is taken out of both
    theirs, ours = _openleadr_reads(data), _openleadr_reads(written)
    assert without_report_subject(ours) == without_report_subject(theirs)
