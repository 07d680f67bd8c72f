"""schemas.new_id: unique, and never shaped like a meter number the privacy filter refuses."""

from __future__ import annotations

import re

from privacy.detect import EAN_SHAPE
from schemas import new_id


def test_ids_are_unique_and_never_hold_an_18_digit_run() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    # Unhyphenated random hex of this length holds an 18-digit run about once in a few hundred IDs.
    assert not [i for i in ids if EAN_SHAPE.search(i)]
    assert max(len(run) for i in ids for run in re.findall(r"\d+", i)) <= 12
