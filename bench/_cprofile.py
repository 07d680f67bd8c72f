"""cProfile of a benchmark window on the event-loop thread's CPU clock, as text.

The benchmarks run on a loaded machine: profiled on wall time, whatever ran while the process
waited for a core would be charged to the code it happened to be in, so the timer is
``time.thread_time`` (CPU of the thread that enabled the profile: the event loop's, not the
SQLite writer's or any other thread's).

The report opens with the own time summed by area (:func:`area`: the package a function's file
belongs to, or for a C function the module of its type), the share each takes of the profiled
CPU; then the top functions by own time and by cumulative time.

Invariants: at most one profile running per :class:`Profiler`; stopping one that never started
gives empty text.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import sysconfig
import time
from collections import Counter

__all__ = ["Profiler", "area"]

_STDLIB = sysconfig.get_paths()["stdlib"] + "/"
_SITE = "/site-packages/"
# "<method 'read' of '_ssl._SSLSocket' objects>", "<built-in method time.monotonic>"
_C_OWNER = re.compile(
    r"<(?:method '[^']*' of '([\w.]+)\.\w+' objects|built-in method ([\w.]+)\.\w+)>")


def area(filename: str, function: str) -> str:
    """Where a profiled function belongs: ``aiohttp`` (an installed package), ``asyncio``
    (the standard library's, ``stdlib`` for its top-level modules), ``schemas`` (this
    repository's first directory); a C function by its type's module (``ssl`` for ``_ssl``) or
    ``builtins``. lxml's compiled functions are not profiled apart: their time is their
    caller's own."""
    if filename == "~":
        owner = _C_OWNER.match(function)
        module = next((g for g in owner.groups() if g), "") if owner else ""
        return module.split(".")[0].lstrip("_") or "builtins"
    if _SITE in filename:
        return filename.split(_SITE, 1)[1].split("/")[0].removesuffix(".py")
    if filename.startswith(_STDLIB):
        parts = filename.removeprefix(_STDLIB).split("/")
        return parts[0] if len(parts) > 1 else "stdlib"
    for top in ("/bench/", "/cbp/", "/devpki/", "/privacy/", "/schemas/", "/tomlconfig/",
                "/ven/", "/vtn/"):
        if top in filename:
            return top.strip("/")
    return "other"


def _areas(stats: pstats.Stats) -> str:
    own: Counter[str] = Counter()
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own[area(filename, function)] += row[2]
    total = sum(own.values()) or 1.0
    return "own time by area:\n" + "\n".join(
        f"  {name:<16} {seconds:8.3f} s {100 * seconds / total:5.1f} %"
        for name, seconds in own.most_common()) + "\n"


class Profiler:
    """Start, then stop for the report: own time by area, then the top functions by own time
    and by cumulative time."""

    def __init__(self) -> None:
        self._profile: cProfile.Profile | None = None

    def start(self) -> None:
        self._profile = cProfile.Profile(time.thread_time)
        self._profile.enable()

    def stop(self) -> str:
        if self._profile is None:
            return ""
        self._profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(self._profile, stream=out)
        out.write(_areas(stats))
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        self._profile = None
        return out.getvalue()
