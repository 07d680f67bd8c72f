"""Who may talk to the VTN: every certificate a penetration tester would try, each refused.

The VTN runs as deployed (``create_app`` + ``server_ssl_context(config)``). A refusal at the TLS
layer is proved twice: the client's request fails, and the VTN stored nothing for it (each attacker
tries to *register*, which would leave a row). Refusals above TLS are OpenADR 463 replies.
"""

from __future__ import annotations

import shutil
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from devpki import IssuedCertificate, Role
from schemas import CreatePartyRegistration, Poll, RequestEvent
from schemas.identity import OPENADR_TLS12_CIPHERS, TlsProfile
from schemas.tls import client_context
from tests.kit.certificates import REFUSED, server_auth_only, shifted_authority
from tests.kit.pki import CertFiles, Pki
from tests.kit.vtn import served_vtn, vtn_config
from tests.vtn.harness import code_of, raw_ven
from vtn.revocation import RevocationWatcher

from .served import tls_probe


def _write(issued: IssuedCertificate, directory: Path) -> CertFiles:
    cert, key = issued.write(directory)
    return CertFiles(name=issued.name, cert=cert, key=key, cert_pem=issued.cert_pem,
                     fingerprint=issued.fingerprint)


async def _try_register(url: str, context: ssl.SSLContext) -> None:
    async with raw_ven(url, context) as ven:
        await ven.post("EiRegisterParty", CreatePartyRegistration(
            request_id="r1", ven_name="intruder", http_pull_model=True))


async def _assert_refused(vtn, context: ssl.SSLContext) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(REFUSED):
        await _try_register(vtn.url, context)
    assert await vtn.ctx.storage.vens.active() == ()


async def _polls_ok(ven) -> None:  # type: ignore[no-untyped-def]
    """Drain what registration queued (e.g. the METADATA offer), then an empty poll: 200."""
    await ven.drain()
    assert code_of(await ven.poll()) == 200


def _client(pki: Pki, files: CertFiles) -> ssl.SSLContext:
    return client_context(cert=files.cert, key=files.key, ca=pki.ca_cert)


async def test_no_client_certificate_is_refused(pki: Pki, sqlite_url: str) -> None:
    bare = ssl.create_default_context(cafile=str(pki.ca_cert))
    async with served_vtn(vtn_config(pki, sqlite_url)) as vtn:
        await _assert_refused(vtn, bare)


@pytest.mark.parametrize(("label", "shift", "lifetime"), [
    ("expired", timedelta(days=-30), timedelta(days=1)),
    ("not yet valid", timedelta(days=30), timedelta(days=365)),
])
async def test_certificate_outside_its_validity_is_refused(
        pki: Pki, sqlite_url: str, tmp_path: Path, label: str, shift: timedelta,
        lifetime: timedelta) -> None:
    issued = shifted_authority(pki, shift).issue(f"ven-{label.replace(' ', '-')}", Role.VEN,
                                                  lifetime=lifetime)
    now = datetime.now(UTC)
    valid = issued.certificate.not_valid_before_utc <= now <= issued.certificate.not_valid_after_utc
    assert not valid, f"the {label} certificate is valid now: the test proves nothing"
    async with served_vtn(vtn_config(pki, sqlite_url)) as vtn:
        await _assert_refused(vtn, _client(pki, _write(issued, tmp_path)))


async def test_server_only_key_usage_is_refused_as_a_client(
        pki: Pki, sqlite_url: str, tmp_path: Path) -> None:
    wrong = _write(server_auth_only(pki, "server-only"), tmp_path)
    async with served_vtn(vtn_config(pki, sqlite_url)) as vtn:
        await _assert_refused(vtn, _client(pki, wrong))


async def test_certificate_from_an_untrusted_ca_is_refused(pki: Pki, sqlite_url: str) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url)) as vtn:
        await _assert_refused(vtn, _client(pki, pki.untrusted_ven))


async def test_revoked_certificate_is_refused_by_the_configured_crl(
        pki: Pki, sqlite_url: str, tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    shutil.copy(pki.crl, crl)
    async with served_vtn(vtn_config(pki, sqlite_url, tls_crl=crl)) as vtn:
        await _assert_refused(vtn, _client(pki, pki.revoked_ven))
        async with raw_ven(vtn.url, pki.client_context(ven=pki.vens[0])) as honest:
            await honest.register("honest")
            await _polls_ok(honest)


async def test_crl_is_reloaded_without_restart(pki: Pki, sqlite_url: str, tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_bytes(pki.authority.revocation_list(()))
    victim = pki.vens[1]
    victim_cert = x509.load_pem_x509_certificate(victim.cert_pem)
    async with served_vtn(vtn_config(pki, sqlite_url, tls_crl=crl)) as vtn:
        async with raw_ven(vtn.url, pki.client_context(ven=victim)) as ven:
            await ven.register("soon-revoked")
            await _polls_ok(ven)
            ven_id = ven.ven_id

        crl.write_bytes(pki.authority.revocation_list((victim_cert,)))
        async with raw_ven(vtn.url, pki.client_context(ven=victim)) as again:
            again.ven_id = ven_id
            with pytest.raises(REFUSED):
                await again.poll()
        async with raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as other:
            await other.register("unaffected")  # the new list revokes one certificate only

        crl.write_bytes(pki.authority.revocation_list(()))  # reinstated: accepted again
        async with raw_ven(vtn.url, pki.client_context(ven=victim)) as back:
            back.ven_id = ven_id
            await _polls_ok(back)


def test_an_unreadable_crl_keeps_the_last_good_list(pki: Pki, tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    shutil.copy(pki.crl, crl)
    watcher = RevocationWatcher(cert=pki.vtn.cert, key=pki.vtn.key, ca=pki.ca_cert, crl=crl)
    first = watcher.current()
    crl.write_bytes(b"-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n")
    assert watcher.current() is first
    assert watcher.failures == 1 and watcher.reloads == 0
    crl.unlink()
    assert watcher.current() is first
    crl.write_bytes(pki.authority.revocation_list(()))
    assert watcher.current() is not first
    assert watcher.reloads == 1


async def test_trusted_but_unregistered_certificate_gets_463(pki: Pki, sqlite_url: str) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url)) as vtn:
        async with raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as stranger:
            reply = await stranger.post("OadrPoll", Poll(ven_id="anyone"))
            assert code_of(reply) == 463
            reply = await stranger.post("EiEvent", RequestEvent(request_id="q", ven_id="anyone"))
            assert code_of(reply) == 463
        assert await vtn.ctx.storage.vens.active() == ()


async def test_registered_certificate_used_for_another_ven_id_gets_463(
        pki: Pki, sqlite_url: str) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url)) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[0])) as a, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as b:
        await a.register("a")
        await b.register("b")
        assert code_of(await b.post("OadrPoll", Poll(ven_id=a.ven_id))) == 463
        reply = await b.post("EiEvent", RequestEvent(request_id="q", ven_id=a.ven_id))
        assert code_of(reply) == 463
        await _polls_ok(a)  # a's own certificate still works


async def test_tls13_is_the_default_and_tls12_clients_are_refused(
        pki: Pki, sqlite_url: str) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url)) as vtn:
        version, _ = await tls_probe(vtn.url, pki.client_context())
        assert version == "TLSv1.3"
        with pytest.raises(REFUSED):
            await tls_probe(vtn.url, pki.client_context(profile=TlsProfile.OPENADR_TLS12))


async def test_openadr_tls12_suites_by_configuration(pki: Pki, sqlite_url: str) -> None:
    config = vtn_config(pki, sqlite_url, tls_profile=TlsProfile.OPENADR_TLS12)
    tls12 = pki.client_context(profile=TlsProfile.OPENADR_TLS12)
    async with served_vtn(config) as vtn:
        version, cipher = await tls_probe(vtn.url, tls12)
        assert version == "TLSv1.2"
        assert cipher in OPENADR_TLS12_CIPHERS.split(":")
        with pytest.raises(REFUSED):  # TLS 1.3 is off in the certification profile
            await tls_probe(vtn.url, pki.client_context())
        async with raw_ven(vtn.url, tls12) as ven:
            await ven.register("tls12")
            await _polls_ok(ven)
