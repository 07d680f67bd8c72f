"""``python -m bench NAME [ARGS...]``: run one sub-benchmark by name.

Each sub-benchmark is a module ``bench.<name>`` with ``main(argv: list[str]) -> int``; add yours to
``BENCHMARKS`` (e.g. ``vtn``, ``cbp``) and it is listed and dispatched here.

Stopping one: SIGTERM takes the way SIGINT (Ctrl-C) takes (:func:`_terminate_as_interrupt`), so
either unwinds the benchmark through its context managers, which end the children it started
(VTN processes, load generators, the XMPP server, the device fleet) and remove its temporary run
folder; it then exits with 128 + the signal's number.
"""

from __future__ import annotations

import importlib
import signal
import sys
from types import FrameType
from typing import Final

BENCHMARKS: Final[dict[str, str]] = {
    "codec": "decode/encode/sign: crowdflex schemas vs openleadr on the same messages",
    "vtn": "registration, poll, report, fan-out, signed poll (+ a hostile one): crowdflex VTN vs"
           " openleadr's",
    "fleet": "a fleet's workload (10-s polls, 4-s telemetry, events, reconnects): VTN CPU per"
             " device-minute, latency, RSS per VEN, crowdflex vs openleadr",
    "fleetkinds": "the fleet's requests one kind at a time (poll, report, event poll, ack,"
                  " reconnect): VTN CPU per request and per device-minute, both VTNs",
    "soak": "1,000 VENs polling and reporting on loopback: VTN memory, errors, points lost",
    "cbp": "2,000 devices on one aggregator: activation -> all acks, CPU per device per minute",
    "failover": "SIGKILL one of 3 crowdflex vtn workers (PostgreSQL) mid fan-out to 1,000 VENs:"
                " time until the fleet is whole, nothing lost or stored twice",
    "workers": "the fleet workload on crowdflex vtn --workers 1 and 2 (PostgreSQL): CPU per"
               " request, VTN and database, and what a second worker adds",
    "sigshapes": "VTN signature-check CPU per hostile signed shape (red team of review 2)",
    "purge": "report writes during a retention purge on SQLite: their waits, the purge's time",
    "coldwork": "the codec's work per fleet device back to back and after a pause: what this host"
                " charges for work that finds its core cold",
}


def _terminate_as_interrupt(received: list[int]) -> None:
    """On SIGTERM, do what SIGINT's handler of the moment does (asyncio.Runner's cancels the main
    task, which raises KeyboardInterrupt once it has unwound; Python's raises it at once), or
    raise KeyboardInterrupt when SIGINT is ignored; the signal is appended to ``received``."""
    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        interrupt = signal.getsignal(signal.SIGINT)
        if not callable(interrupt):
            raise KeyboardInterrupt
        interrupt(signal.SIGINT, frame)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print("usage: python -m bench NAME [ARGS...]\n\nbenchmarks:")
        for name, about in BENCHMARKS.items():
            print(f"  {name:<10} {about}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"bench.{argv[0]}")
    received: list[int] = []
    _terminate_as_interrupt(received)
    try:
        result: int = module.main(argv[1:])
    except KeyboardInterrupt:
        stop = signal.Signals(received[0] if received else signal.SIGINT)
        print(f"bench {argv[0]}: stopped by {stop.name}", file=sys.stderr)
        return 128 + stop
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
