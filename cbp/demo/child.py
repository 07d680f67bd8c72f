"""The demo's device-fleet child process: ``crowdflex device --config FILE --json-progress``.

Owns the child's lifetime: started with the running interpreter (so the same virtualenv), its
JSON progress lines read from stdout, its stderr kept in a log file of the run folder, stopped
with SIGTERM (it closes its connections and outbox) and killed only if it does not end in time.
A fleet configured with ``hold_after_registration`` waits after registering until
:meth:`FleetProcess.release` writes a line to its stdin.

Invariant: the child is always reaped; :meth:`FleetProcess.stop` is safe to call twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

__all__ = ["FleetProcess"]

_LAUNCH = "import sys; from cbp.cli import main; sys.exit(main(sys.argv[1:]))"


class FleetProcess:
    """A running ``crowdflex device`` child and the progress it reported."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self.progress: list[dict[str, object]] = []

    @classmethod
    async def start(cls, config: Path, log: Path) -> FleetProcess:
        with log.open("ab") as err:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _LAUNCH, "device", "--config", str(config),
                "--state-dir", str(config.parent), "--json-progress", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=err)
        return cls(process, log)

    async def wait_for(self, key: str, timeout: float) -> dict[str, object]:
        """The next progress line carrying ``key``; fails loudly if the child ends first."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    code = await self.process.wait()
                    raise RuntimeError(f"the device fleet process ended (exit {code}); "
                                       f"see {self.log}")
                item = json.loads(line)
                self.progress.append(item)
                if key in item:
                    return dict(item)

    async def release(self) -> None:
        """Let a holding fleet start polling and sending telemetry."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()

    async def stop(self, timeout: float = 20.0) -> int:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(timeout):
                    if self.process.stdout is not None:
                        async for line in self.process.stdout:
                            self.progress.append(json.loads(line))
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode or 0
