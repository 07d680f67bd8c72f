"""OpenADR 2.0b events payloads (being written)."""

from __future__ import annotations

__all__: list[str] = []
