"""Getting a compromised VEN out at once: the admin API's forced deregistration
(``POST /vens/{id}/evict``) and closing open connections when the CRL starts revoking them.

A VEN need not cooperate: admin cancel only queues oadrCancelPartyRegistration, which a hostile
VEN answers with an error and stays registered; a keep-alive connection set up before a
revocation was checked against the old list. The VTN is served as deployed
(tests/security/served.py), the admin API on its own plain-HTTP port as ``crowdflex vtn`` does.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from schemas import CancelPartyRegistration, Message, Poll, Response
from tests.kit.admin import admin_client
from tests.kit.vtn import served_vtn, vtn_config
from tests.security.rawhttp import closed_by_server, request_head
from tests.vtn.harness import CODEC, code_of, raw_ven

GRACE_S = 5.0


async def _open(url: str, context: ssl.SSLContext
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port, ssl=context,
                                         server_hostname=parts.hostname)


async def _poll_on(url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   ven_id: str) -> Message:
    """One oadrPoll on an open keep-alive connection; the VTN's reply."""
    body = CODEC.encode(Poll(ven_id=ven_id))
    writer.write(request_head(url, "OadrPoll", len(body)) + body)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return CODEC.decode(await reader.readexactly(length))


async def test_evict_takes_effect_at_once_without_the_ven(pki, tmp_path: Path) -> None:
    """Tried: a registered VEN holds a keep-alive connection and has items queued, including the
    oadrCancelPartyRegistration of an admin cancel it never confirms. ``POST /vens/{id}/evict``:
    its registration is cancelled, its queue emptied, its open connection closed by the VTN, and
    its next request is refused as unregistered (463); another VEN is untouched."""
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}")
    async with served_vtn(config) as vtn, admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as hostile, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as bystander:
        await hostile.register("hostile")
        await bystander.register("bystander")
        await bystander.drain()
        async with http.post(f"{base}/vens/{hostile.ven_id}/cancel") as reply:
            assert reply.status == 202  # queued, and the VEN can ignore it
        assert await vtn.ctx.storage.outbox.pending_count(hostile.ven_id) >= 1
        reader, writer = await _open(vtn.url, pki.client_context(ven=pki.vens[1]))
        try:
            async with asyncio.timeout(GRACE_S):
                queued = await _poll_on(vtn.url, reader, writer, hostile.ven_id)
                assert not isinstance(queued, Response)  # a queued item: served while registered
                async with http.post(f"{base}/vens/{hostile.ven_id}/evict") as reply:
                    assert reply.status == 200
                    answer = await reply.json()
                assert await closed_by_server(reader) == b""  # closed by the VTN
        finally:
            writer.close()
        assert answer["evicted"] == hostile.ven_id and answer["dropped"] >= 1
        assert answer["connections_closed"] >= 1
        stored = await vtn.ctx.storage.vens.get(hostile.ven_id)
        assert stored is not None and not stored.active
        assert await vtn.ctx.storage.outbox.pending_count(hostile.ven_id) == 0
        assert code_of(await hostile.poll()) == 463
        reply = await hostile.post("EiRegisterParty", CancelPartyRegistration(
            request_id="x", registration_id=hostile.registration_id, ven_id=hostile.ven_id))
        assert code_of(reply) == 463
        reply = await bystander.poll()
        assert isinstance(reply, Response) and reply.response.code == 200
        async with http.post(f"{base}/vens/nobody/evict") as reply:
            assert reply.status == 404
        # eviction is not a ban: the certificate may register afresh (revoke it to keep it out)
        again = await hostile.register("back")
        assert getattr(again, "ven_id", None) == hostile.ven_id
        stored = await vtn.ctx.storage.vens.get(hostile.ven_id)
        assert stored is not None and stored.active


async def test_crl_reload_closes_open_connections_of_revoked_certificates(
        pki, tmp_path: Path) -> None:
    """Tried: two VENs hold keep-alive connections, each answered once; then the CRL file is
    rewritten to revoke one of them. The VTN closes the revoked VEN's open connection by itself
    (it would otherwise go on polling and reporting on it); the other VEN's connection stays up
    and is answered."""
    crl = tmp_path / "crl.pem"
    crl.write_bytes(pki.authority.revocation_list(()))
    victim, other = pki.vens[1], pki.vens[2]
    config = vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}", tls_crl=crl,
                        crl_check_interval_s=0.05)
    async with served_vtn(config) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=victim)) as first, \
            raw_ven(vtn.url, pki.client_context(ven=other)) as second:
        for ven in (first, second):
            await ven.register()
            await ven.drain()
        revoked_reader, revoked_writer = await _open(vtn.url, pki.client_context(ven=victim))
        kept_reader, kept_writer = await _open(vtn.url, pki.client_context(ven=other))
        try:
            async with asyncio.timeout(GRACE_S):
                assert code_of(await _poll_on(vtn.url, revoked_reader, revoked_writer,
                                              first.ven_id)) == 200
                assert code_of(await _poll_on(vtn.url, kept_reader, kept_writer,
                                              second.ven_id)) == 200
                crl.write_bytes(pki.authority.revocation_list(
                    (x509.load_pem_x509_certificate(victim.cert_pem),)))
                assert await closed_by_server(revoked_reader) == b""
                assert code_of(await _poll_on(vtn.url, kept_reader, kept_writer,
                                              second.ven_id)) == 200
        finally:
            revoked_writer.close()
            kept_writer.close()
