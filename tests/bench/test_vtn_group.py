"""bench._vtn_group's teardown: a command that ignores SIGTERM is killed after its grace, and so is
every process under it (a supervisor's workers would outlive it otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys

from bench._vtn_group import stop_tree

# a parent that ignores SIGTERM, with a child that ignores it too; it prints the child's pid
_STUBBORN = """
import signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); "
    "time.sleep(3600)"], stdout=subprocess.PIPE)
child.stdout.readline()
print(child.pid, flush=True)
signal.pause()
"""


async def test_a_command_that_ignores_sigterm_is_killed_with_every_process_under_it() -> None:
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", _STUBBORN,
                                                  stdout=asyncio.subprocess.PIPE)
    assert parent.stdout is not None
    async with asyncio.timeout(60):
        child = int(await parent.stdout.readline())
    exited = os.pidfd_open(child)  # readable once the child has exited
    try:
        await stop_tree(parent, grace_s=0.5)
        assert parent.returncode == -signal.SIGKILL
        readable, _, _ = select.select([exited], [], [], 60)
        assert readable, f"pid {child}, under the stopped command, still runs"
    finally:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(exited, signal.SIGKILL)
        os.close(exited)
