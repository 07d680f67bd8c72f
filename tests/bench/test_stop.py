"""A benchmark stopped by SIGTERM or SIGINT ends the children it started and removes its run
folder (bench/__main__.py): ``bench cbp --xmpp`` with one device, stopped once its XMPP server
and its device fleet process run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench._vtn_group import kill_tree
from tests.xmpp.server import require_prosody

ROOT = Path(__file__).parents[2]


def _children(pid: int) -> dict[int, str]:
    """The live children of ``pid``: pid -> command line."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            found[int(child)] = cmdline.replace(b"\0", b" ").decode()
    return found


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _kill_left(pids: list[int]) -> None:
    """SIGKILL to those of ``pids`` still alive: a failing run leaves no stray process."""
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _ignore_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("stop", "start"), [
    (signal.SIGTERM, None), (signal.SIGINT, None),
    (signal.SIGTERM, _ignore_interrupt),  # as a job started in the background by sh
], ids=["SIGTERM", "SIGINT", "SIGTERM-with-SIGINT-ignored"])
def test_a_stopped_cbp_bench_ends_its_xmpp_server_and_fleet_and_removes_its_folder(
        stop: signal.Signals, start: Callable[[], None] | None) -> None:
    require_prosody()
    children: dict[int, str] = {}
    with subprocess.Popen([sys.executable, "-u", "-m", "bench", "cbp", "--devices", "1",
                           "--steady-s", "600", "--xmpp"], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          preexec_fn=start) as bench:
        try:
            assert bench.stdout is not None
            lines = []
            for line in bench.stdout:  # the bench's own progress says when its children run
                lines.append(line)
                if "pool registration:" in line:
                    break
            else:
                pytest.fail(f"the bench ended before its pool registered: {''.join(lines)}")
            folder = Path(re.findall(r"run folder (\S+)", lines[0])[0])
            children = _children(bench.pid)
            kinds = sorted("prosody" if "prosody" in cmd else "fleet" if " device " in cmd
                           else cmd for cmd in children.values())
            assert kinds == ["fleet", "prosody"]
            prosody_dir = Path(re.findall(r"--config (\S+)/prosody\.cfg\.lua",
                                          " ".join(children.values()))[0])
            assert folder.is_dir() and prosody_dir.is_dir()
            bench.send_signal(stop)
            _out, err = bench.communicate(timeout=120)
            assert bench.returncode == 128 + stop, err[-2000:]
            assert f"bench cbp: stopped by {stop.name}" in err
            # the bench reaps its children before it exits: none is left, not even a zombie
            assert [pid for pid in children if _alive(pid)] == []
            assert not folder.exists() and not prosody_dir.exists()
        except BaseException:
            if bench.poll() is None:
                kill_tree(bench.pid)
            _kill_left(list(children))
            raise
