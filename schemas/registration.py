"""OpenADR 2.0b registration payloads (being written)."""

from __future__ import annotations

__all__: list[str] = []
