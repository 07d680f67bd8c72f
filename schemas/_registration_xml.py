"""Wire form of :mod:`schemas.registration` (being written)."""

from __future__ import annotations

from typing import Any

ENCODERS: dict[type, Any] = {}
DECODERS: dict[str, Any] = {}
