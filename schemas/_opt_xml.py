"""Wire form of :mod:`schemas.opt` (being written)."""

from __future__ import annotations

from typing import Any

ENCODERS: dict[type, Any] = {}
DECODERS: dict[str, Any] = {}
