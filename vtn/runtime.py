"""How a serving process runs: the event loop it runs on and the process-wide tuning it opts in
to. ``crowdflex vtn`` and the CBP node commands take both from here (:mod:`cbp.cli._process`), as
do the benchmarks; nothing here is ever done on import, and :mod:`vtn.app` never does it, so a
library host keeps its own settings.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import platform
import sys
from collections.abc import Callable

__all__ = ["serving_loop_factory", "tune_serving_process"]

# With SQLite the event loop hands work to the database threads and back on every request; at
# CPython's default 5 ms switch interval a thread that wants the GIL back waits for the other to
# give it up. Measured (bench vtn, 100 VENs, 3 runs each): poll CPU 0.80-1.13 -> 0.73-0.90 ms,
# report CPU 2.97-3.05 -> 2.37-2.96 ms.
_SERVING_SWITCH_INTERVAL_S = 0.0005
# CPython collects its youngest generation every 700 net new container objects. With a hundred
# requests in flight most of those are still alive, so each collection promotes them and the older
# generations, the whole heap at last, are scanned again and again. Measured (bench vtn, 100 VENs,
# 8 s of polls then 8 s of reports, one run each): 271 collections costing 0.33 s of CPU -> 6
# costing 0.01 s.
_SERVING_GC_YOUNG_THRESHOLD = 5000

# uvloop gives every TLS connection a 256 KiB read buffer (malloc). glibc serves blocks that large
# with mmap only until the first is freed, then raises its threshold and carves them out of the
# heap, where connections coming and going leave resident fragments behind. A fixed threshold
# under 256 KiB keeps each buffer its own mapping: resident only where a read touched it, and
# returned to the system when its connection closes. Measured (VTN RSS per VEN after 300 and 1,000
# VENs registered and polled, one run each, machine under load): 64.2 -> 59.6 and 68.4 -> 62.8 KiB.
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
_SERVING_MMAP_THRESHOLD_BYTES = 128 * 1024

_EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def tune_serving_process() -> None:
    """Opt-in for a process whose job is serving a VTN (``crowdflex vtn`` calls it, once its
    imports are done): a shorter GIL switch interval; what is alive now (modules, compiled
    schemas) moved out of the collector's sight with :func:`gc.freeze`, and the youngest
    generation collected less often; on glibc, blocks of 128 KiB and more always mmap-ed (each
    connection's TLS read buffer its own mapping). Process-wide, so a library never does this
    behind its host's back."""
    sys.setswitchinterval(_SERVING_SWITCH_INTERVAL_S)
    gc.freeze()
    _young, *older = gc.get_threshold()
    gc.set_threshold(_SERVING_GC_YOUNG_THRESHOLD, *older)
    if platform.libc_ver()[0] == "glibc":
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _SERVING_MMAP_THRESHOLD_BYTES)


def serving_loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop a serving process runs on (``asyncio.Runner(loop_factory=...)``).

    ``"uvloop"``: uvloop's, whose TLS transport and I/O are compiled; asyncio's TLS runs in
    Python (``asyncio.sslproto``), a quarter of a keep-alive poll's CPU. Measured (bench vtn,
    100 VENs, 6 interleaved runs each): VTN CPU per poll 0.138 -> 0.114 ms, per 10-point report
    0.664 -> 0.646 ms. ``"asyncio"``: the standard library's. ``"auto"``: uvloop when it
    is installed (a dependency everywhere it builds), else asyncio's. TLS settings, certificate
    checks and every limit are the same on either: the ``ssl.SSLContext`` does the TLS.
    """
    if name not in _EVENT_LOOPS:
        raise ValueError(f"event loop {name!r}: choose one of {', '.join(_EVENT_LOOPS)}")
    if name != "asyncio":
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ValueError("event loop 'uvloop': uvloop is not installed") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop
