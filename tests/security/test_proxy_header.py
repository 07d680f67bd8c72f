"""``trusted_cert_header`` (a TLS-terminating proxy forwards the VEN's certificate): honoured only
on connections from the configured proxy, and the forwarded certificate checked as the TLS layer
checks a client certificate (chain, validity, key usage, CRL).

The proxy is played by a client certificate of the session CA listed in
``trusted_proxy_fingerprints`` (or, for a plain-TCP proxy, by its source address); every other
connection is a VEN speaking for itself, whatever header it adds.
"""

from __future__ import annotations

import shutil
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from multidict import CIMultiDict

from devpki import CertificateAuthority, IssuedCertificate, KeyType, Role, generate_key
from schemas import (
    SERVICE_PREFIX,
    CancelPartyRegistration,
    CreatedPartyRegistration,
    CreatePartyRegistration,
    Message,
    Poll,
    Response,
)
from tests.kit.certificates import Candidate, server_auth_only, shifted_authority, tls_accepts
from tests.kit.vtn import served_vtn, vtn_config
from tests.vtn.harness import CODEC, code_of, raw_ven
from vtn.app import SERVICES, create_app
from vtn.config import ConfigError, parse_config
from vtn.settings import VtnConfig

HEADER = "X-SSL-Client-Cert"


def proxied_config(pki, tmp_path: Path, **overrides: object) -> VtnConfig:
    crl = tmp_path / "crl.pem"
    shutil.copy(pki.crl, crl)  # revokes pki.revoked_ven only
    values: dict[str, object] = {
        "trusted_cert_header": HEADER, "tls_crl": crl,
        "trusted_proxy_fingerprints": frozenset({pki.vens[3].fingerprint})}
    values.update(overrides)
    return vtn_config(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}", **values)


async def post(url: str, context: ssl.SSLContext | None, service: str, message: Message, *,
               forwarded: bytes | None, local_host: str | None = None
               ) -> tuple[int, Message | None]:
    """POST ``message`` on a fresh connection, with ``forwarded`` (PEM) URL-encoded in the
    header as nginx's ``$ssl_client_escaped_cert``; (HTTP status, decoded reply if 200)."""
    headers = {"Content-Type": "application/xml"}
    if forwarded is not None:
        headers[HEADER] = quote(forwarded.decode())
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False,
                                     local_addr=(local_host, 0) if local_host else None)
    async with aiohttp.ClientSession(connector=connector) as session, \
            session.post(f"{url}/{service}", data=CODEC.encode(message),
                         headers=headers) as reply:
        body = await reply.read()
        return reply.status, CODEC.decode(body) if reply.status == 200 else None


def _register(name: str) -> CreatePartyRegistration:
    return CreatePartyRegistration(request_id="r1", ven_name=name, http_pull_model=True)


async def test_a_ven_cannot_borrow_another_vens_certificate_through_the_header(
        pki, tmp_path: Path) -> None:
    """Tried: a VEN connects with its own certificate and puts the victim's public certificate
    in the header, then polls and cancels the victim's registration in the victim's name. The
    header is ignored on a connection that is not the proxy's: both are refused with 463, and
    the victim's registration is untouched."""
    async with served_vtn(proxied_config(pki, tmp_path)) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[0])) as victim:
        await victim.register("victim")
        attacker = pki.client_context(ven=pki.vens[1])
        victim_pem = pki.vens[0].cert_pem
        status, reply = await post(vtn.url, attacker, "OadrPoll", Poll(ven_id=victim.ven_id),
                                   forwarded=victim_pem)
        assert status == 200 and reply is not None and code_of(reply) == 463
        status, reply = await post(vtn.url, attacker, "EiRegisterParty", CancelPartyRegistration(
            request_id="c1", registration_id=victim.registration_id, ven_id=victim.ven_id),
            forwarded=victim_pem)
        assert status == 200 and reply is not None and code_of(reply) == 463
        stored = await vtn.ctx.storage.vens.get(victim.ven_id)
        assert stored is not None and stored.active
        # the attacker's own registration goes under its own certificate
        status, reply = await post(vtn.url, attacker, "EiRegisterParty", _register("attacker"),
                                   forwarded=victim_pem)
        assert status == 200
        own = await vtn.ctx.storage.vens.by_fingerprint(pki.vens[1].fingerprint)
        assert own is not None and own.ven_id != victim.ven_id


async def test_the_proxy_forwards_a_valid_certificate(pki, tmp_path: Path) -> None:
    """The honest path: the proxy forwards a VEN's certificate; the VEN registers under that
    certificate's fingerprint and is served. The proxy's own requests without the header are
    nobody's (463)."""
    proxy = pki.client_context(ven=pki.vens[3])
    async with served_vtn(proxied_config(pki, tmp_path)) as vtn:
        status, reply = await post(vtn.url, proxy, "EiRegisterParty", _register("behind-proxy"),
                                   forwarded=pki.vens[0].cert_pem)
        assert status == 200 and reply is not None
        stored = await vtn.ctx.storage.vens.by_fingerprint(pki.vens[0].fingerprint)
        assert stored is not None and stored.ven_id == getattr(reply, "ven_id", None)
        status, reply = await post(vtn.url, proxy, "OadrPoll", Poll(ven_id=stored.ven_id),
                                   forwarded=pki.vens[0].cert_pem)
        assert status == 200 and reply is not None
        assert not isinstance(reply, Response)  # served: what registration queued for it
        status, reply = await post(vtn.url, proxy, "OadrPoll", Poll(ven_id=stored.ven_id),
                                   forwarded=None)
        assert status == 200 and reply is not None and code_of(reply) == 463


def _forgeries(pki, tmp_path: Path) -> dict[str, bytes]:
    expired = shifted_authority(pki, timedelta(days=-30)).issue(
        "ven-expired", Role.VEN, lifetime=timedelta(days=1))
    return {
        "self-signed": CertificateAuthority.create(common_name="self-signed").cert_pem,
        "junk base64": b"-----BEGIN CERTIFICATE-----\nTUlJQmp1bmtqdW5ranVuaw==\n"
                       b"-----END CERTIFICATE-----\n",
        "untrusted CA": pki.untrusted_ven.cert_pem,
        "expired": expired.cert_pem,
        "server-only key usage": server_auth_only(pki, "server-only").cert_pem,
        "revoked": pki.revoked_ven.cert_pem,
    }


@pytest.mark.parametrize("forgery", ["self-signed", "junk base64", "untrusted CA", "expired",
                                     "server-only key usage", "revoked"])
async def test_the_proxy_header_is_checked_as_tls_would(pki, tmp_path: Path,
                                                        forgery: str) -> None:
    """Tried, through the trusted proxy itself: registering with a forwarded certificate that the
    TLS layer refuses. Each is answered 463 and nothing is stored."""
    pem = _forgeries(pki, tmp_path)[forgery]
    async with served_vtn(proxied_config(pki, tmp_path)) as vtn:
        status, reply = await post(vtn.url, pki.client_context(ven=pki.vens[3]),
                                   "EiRegisterParty", _register(forgery), forwarded=pem)
        assert status == 200 and reply is not None and code_of(reply) == 463
        assert await vtn.ctx.storage.vens.active() == ()


async def test_rotating_headers_do_not_give_fresh_rate_limit_buckets(
        pki, tmp_path: Path) -> None:
    """Tried: a VEN with a burst of 2 sends each request with a different certificate in the
    header. The header is not its identity, so the third request is over its one bucket: 429."""
    config = proxied_config(pki, tmp_path, rate_limit_per_s=0.01, rate_limit_burst=2)
    hostile = pki.client_context(ven=pki.vens[1])
    async with served_vtn(config) as vtn:
        statuses = [(await post(vtn.url, hostile, "OadrPoll", Poll(ven_id="x"), forwarded=pem))[0]
                    for pem in (pki.vens[0].cert_pem, pki.vens[2].cert_pem,
                                pki.untrusted_ven.cert_pem)]
    assert statuses == [200, 200, 429]


@asynccontextmanager
async def plain_tcp_vtn(config: VtnConfig) -> AsyncIterator[tuple[str, web.Application]]:
    """The app behind a plain-TCP listener on 127.0.0.1, as a proxy that terminates TLS for it
    would reach it: (its service URL, the app)."""
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site.port}{SERVICE_PREFIX}", app
    finally:
        await runner.cleanup()


async def test_a_plain_tcp_proxy_is_trusted_by_its_source_address(pki, tmp_path: Path) -> None:
    """With ``trusted_proxy_addresses = ["127.0.0.1/32"]``: a forwarded certificate from
    127.0.0.1 registers under its fingerprint; the same request from 127.0.0.2 is nobody's."""
    config = proxied_config(pki, tmp_path, trusted_proxy_fingerprints=frozenset(),
                            trusted_proxy_addresses=("127.0.0.1/32",))
    async with plain_tcp_vtn(config) as (url, app):
        status, reply = await post(url, None, "EiRegisterParty", _register("outsider"),
                                   forwarded=pki.vens[1].cert_pem, local_host="127.0.0.2")
        assert status == 200 and reply is not None and code_of(reply) == 463
        status, reply = await post(url, None, "EiRegisterParty", _register("proxied"),
                                   forwarded=pki.vens[0].cert_pem, local_host="127.0.0.1")
        assert status == 200 and reply is not None
        services = app[SERVICES]
        assert [v.fingerprint for v in await services.storage.vens.active()] == \
            [pki.vens[0].fingerprint]


def test_the_header_without_a_proxy_is_refused_at_load_time(pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trusted_proxy"):
        parse_config({"trusted_cert_header": HEADER})
    with pytest.raises(ConfigError, match="trusted_proxy_addresses"):
        parse_config({"trusted_cert_header": HEADER, "trusted_proxy_addresses": ["not-an-ip"]})
    loaded = parse_config({"trusted_cert_header": HEADER,
                           "trusted_proxy_fingerprints": [pki.vens[3].fingerprint],
                           "trusted_proxy_addresses": ["10.0.0.0/8"]})
    assert loaded.trusted_proxy_fingerprints == frozenset({pki.vens[3].fingerprint})
    assert loaded.trusted_proxy_addresses == ("10.0.0.0/8",)
    with pytest.raises(ValueError, match="trusted_proxy"):
        create_app(vtn_config(pki, f"sqlite:///{tmp_path / 'v.db'}", trusted_cert_header=HEADER))


async def test_the_proxys_certificate_is_not_capped_per_certificate(pki, tmp_path: Path) -> None:
    """With max_connections_per_peer = 1, the proxy (one certificate carrying many VENs) holds
    three connections at once, each answered; a VEN's own certificate is held to one."""
    config = proxied_config(pki, tmp_path, max_connections_per_peer=1, rate_limit_per_s=None)
    async with served_vtn(config) as vtn:
        proxied = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=pki.client_context(ven=pki.vens[3]))) for _ in range(3)]
        ven_sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=pki.client_context(ven=pki.vens[1]))) for _ in range(2)]
        headers = {"Content-Type": "application/xml",
                   HEADER: quote(pki.vens[0].cert_pem.decode())}
        body = CODEC.encode(Poll(ven_id="x"))
        try:
            for session in proxied:  # each keeps its connection open for the next
                async with session.post(f"{vtn.url}/OadrPoll", data=body,
                                        headers=headers) as reply:
                    assert reply.status == 200
            async with ven_sessions[0].post(f"{vtn.url}/OadrPoll", data=body,
                                            headers=headers) as reply:
                assert reply.status == 200
            with pytest.raises(aiohttp.ClientError):  # its second connection: closed unanswered
                async with ven_sessions[1].post(f"{vtn.url}/OadrPoll", data=body,
                                                headers=headers) as reply:
                    await reply.read()
        finally:
            for session in proxied + ven_sessions:
                await session.close()


async def test_a_remembered_forwarded_certificate_is_checked_again_when_it_may_have_changed(
        pki, tmp_path: Path) -> None:
    """The proxy forwards a VEN's certificate, accepted and remembered. Once the CRL file revokes
    it, the next request is refused (463); reinstated, accepted again; once the VTN's clock is
    past the certificate's expiry, refused again."""
    now = [datetime.now(UTC)]
    config = proxied_config(pki, tmp_path)
    assert config.tls_crl is not None
    proxy = pki.client_context(ven=pki.vens[3])
    forwarded = pki.vens[0].cert_pem
    ven_id = ""

    async def served() -> bool:
        """One poll as the forwarded VEN: answered as that VEN (anything but 463)?"""
        status, reply = await post(vtn.url, proxy, "OadrPoll", Poll(ven_id=ven_id),
                                   forwarded=forwarded)
        assert status == 200 and reply is not None
        return not (isinstance(reply, Response) and reply.response.code == 463)

    async with served_vtn(config, clock=lambda: now[0]) as vtn:
        status, _ = await post(vtn.url, proxy, "EiRegisterParty", _register("remembered"),
                               forwarded=forwarded)
        assert status == 200
        stored = await vtn.ctx.storage.vens.by_fingerprint(pki.vens[0].fingerprint)
        assert stored is not None
        ven_id = stored.ven_id
        assert await served()
        config.tls_crl.write_bytes(pki.authority.revocation_list(
            (x509.load_pem_x509_certificate(forwarded),)))
        assert not await served()
        config.tls_crl.write_bytes(pki.authority.revocation_list(()))
        assert await served()
        now[0] = x509.load_pem_x509_certificate(forwarded).not_valid_after_utc + \
            timedelta(seconds=1)
        assert not await served()


def _leaf(pki, name: str, *, usage: x509.KeyUsage | None, key_id: bool = True
          ) -> IssuedCertificate:
    """A clientAuth leaf of the session CA with the KeyUsage ``usage`` (None: none) and, unless
    ``key_id`` is False, an authorityKeyIdentifier."""
    key = generate_key(KeyType.EC)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(pki.authority.certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if key_id:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            pki.authority.certificate.public_key()), critical=False)
    certificate = builder.sign(pki.authority.private_key, hashes.SHA256())
    return IssuedCertificate.from_parts(name=name, role=Role.VEN, certificate=certificate,
                                        private_key=key)


def _key_usage(*, signs: bool, agrees: bool, enciphers: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signs, content_commitment=False, key_encipherment=enciphers,
        data_encipherment=False, key_agreement=agrees, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False)


async def test_the_proxy_header_and_tls_give_one_verdict_on_key_usage(
        pki, tmp_path: Path) -> None:
    """Tried (red team of issue 14): through the trusted proxy, certificates of the session CA
    that differ from an honest one in their KeyUsage or key identifiers only. Each forwarded
    certificate is accepted exactly when the same certificate is accepted as the TLS client of
    the same VTN. Was: a KeyUsage of keyEncipherment alone (no digitalSignature), which OpenSSL
    refuses for a TLS client, was accepted from the header, and a leaf without an
    authorityKeyIdentifier, which OpenSSL accepts, was refused (the header used the web PKI's
    rules, not the TLS client's)."""
    leaves = {
        "keyEncipherment only": (False, _leaf(pki, "ku-encipher", usage=_key_usage(
            signs=False, agrees=False, enciphers=True))),
        "keyAgreement only": (True, _leaf(pki, "ku-agree", usage=_key_usage(
            signs=False, agrees=True, enciphers=False))),
        "no KeyUsage, no authorityKeyIdentifier": (True, _leaf(pki, "no-aki", usage=None,
                                                                key_id=False)),
    }
    proxy = pki.client_context(ven=pki.vens[3])
    verdicts: dict[str, tuple[bool, bool]] = {}
    async with served_vtn(proxied_config(pki, tmp_path)) as vtn:
        for label, (_, leaf) in leaves.items():
            by_tls = await tls_accepts(vtn.url, pki, Candidate(leaf, tmp_path))
            status, reply = await post(vtn.url, proxy, "EiRegisterParty", _register(label),
                                       forwarded=leaf.cert_pem)
            assert status == 200 and reply is not None
            verdicts[label] = (by_tls, isinstance(reply, CreatedPartyRegistration))
    assert verdicts == {label: (accepted, accepted) for label, (accepted, _) in leaves.items()}


async def test_two_forwarded_certificates_name_nobody(pki, tmp_path: Path) -> None:
    """Tried (red team of issue 14): the header twice on one request from the proxy, the victim's
    certificate first, as when a VEN sends the header itself and a proxy that appends headers
    adds the real one after it. Refused 463 and nothing stored, whichever comes first (was: the
    first was believed, so the VEN registered as the victim)."""
    proxy = pki.client_context(ven=pki.vens[3])
    victim, attacker = pki.vens[0].cert_pem, pki.vens[1].cert_pem
    async with served_vtn(proxied_config(pki, tmp_path)) as vtn:
        for pair in ((victim, attacker), (attacker, victim), (victim, victim)):
            headers = CIMultiDict([("Content-Type", "application/xml")] +
                                  [(HEADER, quote(pem.decode())) for pem in pair])
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=proxy)) as s, \
                    s.post(f"{vtn.url}/EiRegisterParty", data=CODEC.encode(_register("dup")),
                           headers=headers) as reply:
                assert reply.status == 200
                assert code_of(CODEC.decode(await reply.read())) == 463
        assert await vtn.ctx.storage.vens.active() == ()
