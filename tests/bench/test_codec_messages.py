"""The codec benchmark's messages (``bench/_codec_messages.py``): every 2.0b payload type, each
XSD-valid as openleadr writes it, and read by our codec without losing what openleadr reads."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import schemas
from bench._codec_messages import PAYLOADS, UNWRITABLE, openleadr_message, without_report_subject
from schemas._families import DECODERS

ROOT = Path(__file__).parents[2]


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


def test_our_side_of_the_benchmark_runs_without_openleadr_in_its_process() -> None:
    """Importing openleadr slows our decode in the same process, so our side's process must not
    import it (``bench/codec.py`` runs each side in a worker process of its own)."""
    script = (
        "import sys, schemas\n"
        "from bench.codec import ours_rows\n"
        "data = schemas.encode(schemas.Poll(ven_id='ven-1'))\n"
        "for row in ours_rows({'oadrPoll': data}, sign=False): row.batch(1)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openleadr', 'xmltodict')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
