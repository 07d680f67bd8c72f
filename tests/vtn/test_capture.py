"""Message capture (vtn.capture): numbering survives a restart, purging goes by file age or by a
value a capture names."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas import SERVICE_PREFIX, CreatedPartyRegistration, QueryRegistration
from tests.kit.pki import Pki
from tests.kit.vtn import LoopbackVtn, vtn_config
from tests.vtn.harness import raw_ven
from vtn.app import create_app
from vtn.capture import capture_middleware, purge_captures, purge_naming


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=b"<reply/>", content_type="application/xml")


async def _post_once(folder: Path) -> None:
    app = web.Application(middlewares=[capture_middleware(folder)])
    app.router.add_post("/OpenADR2/Simple/2.0b/EiReport", _echo)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post("/OpenADR2/Simple/2.0b/EiReport", data=b"<request/>")
        assert response.status == 200


async def test_a_restarted_vtn_numbers_on_instead_of_overwriting(tmp_path: Path) -> None:
    await _post_once(tmp_path)
    await _post_once(tmp_path)  # a second app on the same folder: a restart
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000001-EiReport-reply.xml", "000001-EiReport-request.xml",
        "000002-EiReport-reply.xml", "000002-EiReport-request.xml"]


async def test_a_captured_request_still_reaches_its_service_whole(pki: Pki,
                                                                  tmp_path: Path) -> None:
    """The capture reads each body before the endpoint does (as the TSO serves it): the
    service must still be given the body, not an empty document (454), and the file holds it."""
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}")
    app = create_app(config)
    app.middlewares.append(capture_middleware(tmp_path / "captures"))
    served = await LoopbackVtn.start(app, config)
    try:
        async with raw_ven(f"{served.url}{SERVICE_PREFIX}", pki.client_context()) as ven:
            answer = await ven.post("EiRegisterParty", QueryRegistration(request_id="q1"))
    finally:
        await served.close()
    assert isinstance(answer, CreatedPartyRegistration) and answer.response.code == 200
    request = tmp_path / "captures" / "000001-EiRegisterParty-request.xml"
    assert b"oadrQueryRegistration" in request.read_bytes()


def test_purge_deletes_captures_older_than_the_cutoff_and_nothing_else(tmp_path: Path) -> None:
    now = datetime(2030, 1, 31, tzinfo=UTC)
    names = {"000001-EiReport-request.xml": 40, "000001-EiReport-reply.xml": 40,
             "000002-OadrPoll-request.xml": 10, "notes.txt": 40}
    for name, days in names.items():
        path = tmp_path / name
        path.write_bytes(b"x")
        stamp = (now - timedelta(days=days)).timestamp()
        os.utime(path, (stamp, stamp))
    assert purge_captures(tmp_path, now - timedelta(days=30)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000002-OadrPoll-request.xml", "notes.txt"]
    assert purge_captures(tmp_path / "missing", now) == 0


def test_purge_naming_deletes_the_captures_naming_a_value_and_nothing_else(
        tmp_path: Path) -> None:
    bodies = {"000001-EiReport-request.xml": b"<r>psn1_gone</r>",
              "000001-EiReport-reply.xml": b"<r>psn1_kept</r>",
              "000002-EiRegisterParty-reply.xml": b"<a>psn1_other</a><b>psn1_gone</b>",
              "notes.txt": b"psn1_gone"}
    for name, body in bodies.items():
        (tmp_path / name).write_bytes(body)
    assert purge_naming(tmp_path, ["psn1_gone", "psn1_absent"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000001-EiReport-reply.xml",
                                                          "notes.txt"]
    assert purge_naming(tmp_path, []) == 0 and purge_naming(tmp_path / "missing", ["x"]) == 0
