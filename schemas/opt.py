"""OpenADR 2.0b opt payloads (being written)."""

from __future__ import annotations

__all__: list[str] = []
