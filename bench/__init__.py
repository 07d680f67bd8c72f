"""crowdflex benchmarks: ``python -m bench NAME``; they print figures and ratios, never verdicts."""
