"""An injected clock the test moves by hand: ``clock = Clock(T0)``, pass ``clock`` where code
asks for "now", then ``clock.now = T0 + timedelta(...)``. No test sleeps to let time pass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Clock"]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now
