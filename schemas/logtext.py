"""Peer-supplied text made safe to put in a log line.

A peer chooses its IDs, JIDs, descriptions and the values quoted back in refusals; written into a
log as they are, a newline forges a second log line and a control character (ESC, the 8-bit CSI
U+009B, a bidi override) rewrites what a terminal shows. :func:`escaped` writes every character
``str.isprintable`` refuses as ``repr`` does (a backslash stays one, so a refusal that already
quotes a value with ``!r`` is not escaped twice) and cuts the text at :data:`MAX_LOGGED_CHARS`
characters, saying how long it was.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_LOGGED_CHARS", "escaped"]

MAX_LOGGED_CHARS: Final = 500


def _escape(character: str) -> str:
    return repr(character)[1:-1]


def escaped(value: object) -> str:
    """``str(value)`` on one line, non-printable characters escaped, at most
    :data:`MAX_LOGGED_CHARS` characters of it kept."""
    text = str(value)
    kept = text[:MAX_LOGGED_CHARS]
    if not kept.isprintable():
        kept = "".join(c if c.isprintable() else _escape(c) for c in kept)
    if len(text) > MAX_LOGGED_CHARS:
        kept += f"... ({len(text)} characters)"
    return kept
