"""What every long-running `crowdflex` node command shares: how it runs (:func:`run_node`: uvloop
and the serving process's tuning), its log level, stopping cleanly on SIGINT/SIGTERM, and the
status file a supervisor reads.

Runtime state never lands next to the configuration: a node keeps its databases, outboxes,
captures and status file in its state directory (``--state-dir``, default ``./state``, made on
first use); :func:`state_path` and :func:`state_storage_url` resolve a TOML's relative runtime
paths there, while certificate and key paths stay relative to the TOML file.

The status file (``--status-file``, default ``STATE_DIR/<role>.status.json``) is one JSON object,
replaced whole (written to a temporary file in the same directory, then renamed) so a reader never
sees half of it. A node writes it once it serves (with the ports it actually bound, so a config
may say ``port = 0``), again whenever its status changes, and a last time -- the last status with
``"state": "stopped"`` -- after it shut down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from tomlconfig import ConfigError, read_file

if TYPE_CHECKING:
    from vtn.settings import VtnConfig

__all__ = ["JsonLines", "StatusFile", "add_log_level", "add_one_process", "add_state_dir",
           "add_state_options", "bound_port", "configure_logging", "one_process_refusal",
           "publish_status", "require_files", "run_node", "state_key", "state_path",
           "state_storage_url", "status_path", "stop_on_signals", "vtn_files", "wait_or_stop"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Loggers that say something on every start (alembic's plugins and migration context) or on
# every request (aiohttp's access log): shown with --log-level DEBUG only.
_CHATTY = ("alembic", "aiohttp.access")
_T = TypeVar("_T")


def run_node(main: Coroutine[Any, Any, _T], *, loop: str = "auto") -> _T:
    """Run a node command's main coroutine as a serving process: on the event ``loop`` named
    (:func:`vtn.runtime.serving_loop_factory`; ``auto`` is uvloop when it is installed: compiled TLS
    and I/O, where asyncio's TLS runs in Python) in a process tuned for serving
    (:func:`vtn.runtime.tune_serving_process`). An unknown ``loop`` is refused (ValueError) before
    anything runs."""
    from vtn.runtime import serving_loop_factory, tune_serving_process

    try:
        loop_factory = serving_loop_factory(loop)
    except ValueError:
        main.close()
        raise
    tune_serving_process()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)


def add_log_level(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    parser.add_argument("--log-level", default=default, choices=_LEVELS, type=str.upper,
                        help=f"logging verbosity, in any case (default: {default}; DEBUG adds "
                        "the access log and the database migrations)")
    parser.add_argument("--log-format", default="text", choices=("text", "json"),
                        help="log lines as text (default) or one JSON object each, with time, "
                        "level, logger, pid, message and any exception, for a log shipper")


def add_one_process(parser: argparse.ArgumentParser, why: str) -> None:
    """``--workers`` of a CBP role that runs as one process only: it takes 1 and refuses more
    (:func:`one_process_refusal`), saying ``why``, instead of an unknown option."""
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help=f"1 only (the default): {why}")


def one_process_refusal(role: str, workers: int, why: str) -> str | None:
    """Why ``crowdflex ROLE --workers N`` does not start, or None for one process."""
    if workers == 1:
        return None
    return (f"--workers {workers}: the {role} runs as one process, because {why}. Run one "
            f"{role} process (docs/deploy.md, \"The CBP roles\"); `crowdflex vtn --workers N` "
            "serves plain VTN traffic from several")


def add_state_dir(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--state-dir", type=Path, default=Path("state"), metavar="DIR",
                        help=f"runtime files: {what}; relative paths of the TOML's runtime keys "
                        "are read from here (default: %(default)s, made when missing)")


def add_state_options(parser: argparse.ArgumentParser, role: str) -> None:
    """``--state-dir`` and ``--status-file`` of a CBP node command."""
    add_state_dir(parser, "databases, outboxes, captures and the status file")
    parser.add_argument("--status-file", type=Path, metavar="FILE",
                        help="keep a JSON status object here (bound port and URL once serving, "
                        "then what the node has done; \"state\": \"stopped\" after shutdown) "
                        f"(default: STATE_DIR/{role}.status.json)")


def status_path(args: argparse.Namespace, role: str) -> Path:
    """The status file named by ``--status-file``, else ``STATE_DIR/<role>.status.json``."""
    chosen: Path | None = args.status_file
    return chosen if chosen is not None else args.state_dir / f"{role}.status.json"


def state_path(value: str, state_dir: Path) -> Path:
    """A runtime path from a TOML file: relative ones live in the state directory."""
    return (state_dir / value).resolve()


def require_files(files: Mapping[str, Path | None]) -> None:
    """Refuse, before anything starts, configured files that are not there: a ValueError naming
    each TOML key and the path it resolved to (OpenSSL's own error names neither)."""
    missing = [f"{key}: no such file {path}" for key, path in files.items()
               if path is not None and not path.is_file()]
    if missing:
        raise ValueError("; ".join(missing))


def vtn_files(config: VtnConfig, table: str) -> dict[str, Path | None]:
    """A VTN config's certificate files by TOML key (``<table>.cert`` ...), for
    :func:`require_files`."""
    return {f"{table}.cert": config.tls_cert, f"{table}.key": config.tls_key,
            f"{table}.ca": config.tls_ca, f"{table}.crl": config.tls_crl}


def state_key(config: Path, key: str) -> str | None:
    """A top-level string key of a TOML file as written (its relative path not yet resolved
    against the file's directory), or None when absent or unreadable; the config loader reports
    what is wrong with the file."""
    try:
        value = read_file(config).get(key)
    except ConfigError:
        return None
    return value if isinstance(value, str) else None


def state_storage_url(url: str, state_dir: Path) -> str:
    """A database URL whose relative SQLite file lives in the state directory; any other URL
    (PostgreSQL, an absolute SQLite path) as given."""
    prefix, _, path = url.partition(":///")
    if not prefix.startswith("sqlite") or not path or Path(path).is_absolute():
        return url
    return f"{prefix}:///{state_path(path, state_dir)}"


class JsonLines(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``pid``,
    ``message`` and, when there is one, ``exception`` (the formatted traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "pid": record.process,
                "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(level: str, form: str = "text") -> None:
    """Timestamped log lines on standard error (a child's stdout may carry its progress), as
    text or, with ``form="json"``, :class:`JsonLines`; the chatty libraries' INFO lines only at
    DEBUG."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if form == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    number = logging.getLevelNamesMapping()[level]
    for name in _CHATTY:
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG
                                         else max(number, logging.WARNING))


def stop_on_signals() -> asyncio.Event:
    """An event set when the process receives SIGINT or SIGTERM (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # platforms without signal handlers
            loop.add_signal_handler(sig, stop.set)
    return stop


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop`` is set; True if it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    return stop.is_set()


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner's first site actually listens on (the config may have said 0)."""
    return int(runner.addresses[0][1])


class StatusFile:
    """A JSON status object replaced atomically; nothing is written without a path."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._last: str | None = None
        self._status: Mapping[str, Any] = {}

    def write(self, status: Mapping[str, Any]) -> None:
        self._status = status
        if self._path is None:
            return
        text = json.dumps({"pid": os.getpid(), **status}, sort_keys=True, default=str)
        if text == self._last:
            return
        temporary = self._path.with_name(self._path.name + ".tmp")
        temporary.write_text(text + "\n")
        os.replace(temporary, self._path)
        self._last = text

    def stopped(self, **status: Any) -> None:
        """The last status written, and ``status``, marked ``"state": "stopped"``."""
        self.write({**self._status, **status, "state": "stopped"})


async def publish_status(status: StatusFile, snapshot: Callable[[], Mapping[str, Any]],
                         stop: asyncio.Event, every: float = 1.0) -> None:
    """Rewrite the status file (when it changed) every ``every`` seconds until ``stop``."""
    while True:
        status.write(snapshot())
        if await wait_or_stop(stop, every):
            return
