"""LeakDetector.scan on its own: where needles are found, in what order, and word boundaries."""

from __future__ import annotations

from privacy import LeakDetector
from privacy.vault import IdentityValue

EAN = "871234567890123456"


def test_findings_come_in_text_order_with_overlaps_and_case_variants() -> None:
    """A long value found twice (overlapping itself is impossible, so back to back), in upper
    case, and after a postcode: one finding per value, ordered by the first place it starts."""
    detector = LeakDetector((IdentityValue(kind="ean", value=EAN),
                             IdentityValue(kind="postcode", value="1234 AB")))
    text = f"x 1234 ab y{EAN}{EAN} and {EAN.upper()}"
    whats = [f.what for f in detector.scan(text, "here")]
    assert len(whats) == 2 and "postcode" in whats[0] and "ean" in whats[1]
    assert all(f.where == "here" for f in detector.scan(text, "here"))


def test_a_short_value_counts_only_as_a_whole_word() -> None:
    """Tried: the postcode inside longer alphanumerics (no finding) and between punctuation
    (a finding); an empty or tiny text finds nothing."""
    detector = LeakDetector((IdentityValue(kind="postcode", value="1234AB"),))
    assert detector.scan("x1234aby", "w") == []
    assert [f.what for f in detector.scan("<a>1234ab</a>", "w")] != []
    assert detector.scan("", "w") == [] and detector.scan("12", "w") == []
