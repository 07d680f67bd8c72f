"""docs/ven.md's XMPP guide runs as written: its program registers with a crowdflex VTN through a
real Prosody, takes an event over XMPP, and its answer is stored; SIGTERM ends it cleanly."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from devpki import Role
from schemas import Target
from tests.docs.test_guides import Program
from tests.kit.pki import Pki
from tests.vtn.harness import sample_event
from vtn.app import XMPP
from vtn.services import Handlers, events

from .conftest import xmpp_vtn
from .server import XmppServer


async def test_the_xmpp_guide_runs_against_a_vtn(pki: Pki, tmp_path: Path,
                                                 xmpp_server: XmppServer) -> None:
    home = tmp_path / "home"
    (home / "certs" / "dev").mkdir(parents=True)
    issued = pki.authority.issue("ven-xmpp", Role.VEN)
    issued.write(home / "certs" / "dev")
    shutil.copyfile(pki.ca_cert, home / "certs" / "dev" / "ca.pem")
    acked = asyncio.Event()
    handlers = Handlers(on_event_response=lambda _ven, _response: acked.set())
    async with xmpp_vtn(pki, xmpp_server, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                        handlers=handlers) as vtn:
        guide = await Program.start(home, "ven.md", "xmpp", XMPP_PORT=str(xmpp_server.port),
                                    VTN_JID=vtn.app[XMPP].jid)
        try:
            ven_id = (await guide.expect(r"registered as (\S+), on XMPP as ")).group(1)
            assert ven_id == issued.fingerprint
            await events.publish_event(vtn.ctx, sample_event("guide-1", Target(
                ven_ids=(ven_id,))))
            await guide.expect(r"event guide-1 #0 over XMPP")
            async with asyncio.timeout(60):
                await acked.wait()
            assert await guide.stop() == 0
        except BaseException:
            print(*guide.lines, sep="\n")
            raise
        finally:
            guide.kill()
