"""A Prosody XMPP server as a child process with a configuration of its own: the XMPP server of
the demo's device link (``python -m bench cbp --xmpp``) and of the XMPP tests.

Its settings are the ones the README shows for a deployment: SASL EXTERNAL only, through
``examples/prosody/mod_auth_openadr.lua`` (each client named by its certificate's fingerprint),
TLS required with client certificates checked against the CA (TLS 1.2 with the OpenADR
profile's suites, or TLS 1.3), no federation (s2s), no in-band registration, Lua's generational
garbage collector. Runtime files live in a temporary directory of their own, removed on stop
(which kills a server that does not end on SIGTERM in time, so no stop waits for ever); as root
the server runs as Debian's unprivileged ``prosody`` user, which Prosody requires.

Needs Debian's ``prosody`` (:func:`prosody_binary` names the package when it is missing).
"""

from __future__ import annotations

import asyncio
import functools
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cbp.net import free_port
from schemas.identity import OPENADR_TLS12_CIPHERS

__all__ = ["MODULES", "TLS12_CIPHERS", "XmppServer", "prosody_binary"]

MODULES: Final = Path(__file__).resolve().parents[2] / "examples" / "prosody"
#: TLS 1.2 as the OpenADR profile has it (its two suites, for RSA and ECC certificates) beside
#: the strong suites Prosody offers by default, which leave those two out (its "intermediate"
#: preset: a VEN or VTN on the OpenADR TLS 1.2 profile got no handshake)
TLS12_CIPHERS: Final = f"{OPENADR_TLS12_CIPHERS}:HIGH+kEECDH:HIGH:!PSK:!SRP:!3DES:!aNULL"


def prosody_binary() -> str:
    """The ``prosody`` on the PATH; :class:`FileNotFoundError` naming the package without one."""
    found = shutil.which("prosody")
    if found is None:
        raise FileNotFoundError("Prosody is not installed (Debian package: prosody)")
    return found


def _lua(text: str | Path) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _become(owner: pwd.struct_passwd) -> None:
    """In the child before Prosody starts: from root to ``owner``, group first."""
    os.setgid(owner.pw_gid)
    os.initgroups(owner.pw_name, owner.pw_gid)
    os.setuid(owner.pw_uid)


@dataclass(slots=True)
class XmppServer:
    """``start()`` -> listening on ``127.0.0.1:port`` for the XMPP domain ``domain``; its
    runtime files live in ``directory`` (made by ``start``, removed by ``stop``)."""

    cert: Path
    key: Path
    ca: Path
    stanza_limit: int = 256 * 1024
    # Lua's generational collector: with Prosody's default (incremental, a cycle every 5 %
    # growth) the server spent 3x the CPU per device-minute relaying telemetry, and at an
    # activation the VTN's one connection was read too slowly for its payloads to go out on
    # time (bench/README.md, "bench cbp --xmpp")
    gc_mode: str = "generational"
    domain: str = "localhost"
    port: int = 0
    directory: Path = Path()
    _process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The running server's process id (None when stopped)."""
        return None if self._process is None else self._process.pid

    def _config(self) -> str:
        return "\n".join((
            f"data_path = {_lua(self.directory / 'data')}",
            f"plugin_paths = {{ {_lua(self.directory / 'plugins')} }}",
            'log = { { levels = { min = "info" }, to = "file", filename = '
            f"{_lua(self.directory / 'prosody.log')} }} }}",
            'modules_enabled = { "tls", "saslauth", "disco", "ping" }',
            'modules_disabled = { "s2s", "offline" }',
            f"c2s_ports = {{ {self.port} }}",
            'c2s_interfaces = { "127.0.0.1" }',
            "s2s_ports = { }", "http_ports = { }", "https_ports = { }",
            "c2s_direct_tls_ports = { }", "s2s_direct_tls_ports = { }",
            "c2s_require_encryption = true",
            "allow_registration = false",
            f"gc = {{ mode = {_lua(self.gc_mode)} }}",
            f"c2s_stanza_size_limit = {self.stanza_limit}",
            'authentication = "openadr"',
            'storage = "internal"',
            f"ssl = {{ certificate = {_lua(self.directory / 'server.crt')}, "
            f"key = {_lua(self.directory / 'server.key')}, "
            f'cafile = {_lua(self.directory / "ca.crt")}, protocol = "tlsv1_2+", '
            f"ciphers = {_lua(TLS12_CIPHERS)}, "
            'verify = { "peer", "client_once" }, '
            'verifyext = { lsec_continue = false, lsec_ignore_purpose = false } }',
            "run_as_root = false",
            f"VirtualHost {_lua(self.domain)}",
            "",
        ))

    async def start(self, timeout: float = 30.0) -> None:
        binary = prosody_binary()
        # under the system's temporary directory (world-traversable), where the "prosody" user
        # reaches it; not under a private one such as pytest's
        self.directory = Path(tempfile.mkdtemp(prefix="crowdflex-prosody-"))
        self.port = self.port or free_port()  # started again: the same port
        (self.directory / "data").mkdir()
        config = self.directory / "prosody.cfg.lua"
        config.write_text(self._config())
        for source, name in ((self.cert, "server.crt"), (self.key, "server.key"),
                             (self.ca, "ca.crt")):
            shutil.copyfile(source, self.directory / name)
        # the auth module too: the checkout may be private to its owner (a clone made with
        # mktemp -d), where the "prosody" user cannot read examples/prosody
        shutil.copytree(MODULES, self.directory / "plugins")
        become: Callable[[], None] | None = None
        if os.geteuid() == 0:  # Prosody refuses root: Debian's "prosody" user owns its files
            owner = pwd.getpwnam("prosody")
            for path in (self.directory, *self.directory.rglob("*")):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            become = functools.partial(_become, owner)
        # preexec_fn, not user=/group=: uvloop (the bench's loop) refuses those two arguments
        self._process = await asyncio.create_subprocess_exec(
            binary, "-F", "--config", str(config), preexec_fn=become,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await self._listening(timeout)

    async def _listening(self, timeout: float) -> None:
        assert self._process is not None
        async with asyncio.timeout(timeout):
            while True:
                if self._process.returncode is not None:
                    log = self.directory / "prosody.log"
                    shown = log.read_text()[-2000:] if log.exists() else "(no log)"
                    raise RuntimeError(f"prosody exited with {self._process.returncode}: "
                                       f"{shown}")
                try:
                    _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)  # probe interval, bounded by the deadline
                    continue
                writer.close()
                return

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, and SIGKILL if Prosody has not exited within ``timeout`` s; then its
        runtime directory is removed."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
