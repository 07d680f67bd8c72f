"""OpenADR 2.0b reports payloads (being written)."""

from __future__ import annotations

__all__: list[str] = []
