"""A signer's certificate passes exactly the checks a TLS client's passes (security review 2,
finding 10).

The review found the XML-signature check weaker than TLS: it ignored pathLen, KeyUsage, EKU and the
CRL, and accepted a leaf under a CA:TRUE sub-CA below the session CA (``pathlen:0``), which TLS
refuses. Both now go through the same rules (:class:`schemas.certpath.PathCheck`, the VTN's CRL file
for both). Here, on one running VTN (mutual TLS on loopback, its CRL configured, signatures
required but not bound to the TLS peer): each certificate is tried once as the TLS client and
once as the signer of a poll sent over an honest VEN's connection, and the two verdicts must agree.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devpki import CertificateAuthority, IssuedCertificate, KeyType, Role, generate_key
from schemas import Codec, Poll, Response, SignatureInvalid, Signer, Verifier
from schemas.certpath import Purpose
from schemas.tls import client_context, server_context
from tests.kit.certificates import Candidate, tls_accepts
from tests.kit.pki import Pki
from tests.kit.signed import signed_ven
from tests.kit.vtn import served_vtn, vtn_config
from vtn.signing import SignatureSettings

_NOW = datetime.now(UTC)


def _usage(*, signs: bool, certifies: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signs, key_encipherment=not signs and not certifies,
        content_commitment=False, data_encipherment=False, key_agreement=False,
        key_cert_sign=certifies, crl_sign=certifies, encipher_only=False, decipher_only=False)


_CLIENT = (ExtendedKeyUsageOID.CLIENT_AUTH,)


def _mint(name: str, issuer: IssuedCertificate | CertificateAuthority, *, ca: bool = False,
          usage: x509.KeyUsage | None = None,
          purposes: tuple[x509.ObjectIdentifier, ...] | None = None,
          ) -> IssuedCertificate:
    """A certificate ``issuer`` signed: a leaf (clientAuth by default) or, with ``ca``, a CA
    without pathLen (no ExtendedKeyUsage unless ``purposes`` are given)."""
    key = generate_key(KeyType.EC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - timedelta(minutes=5)).not_valid_after(_NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage or _usage(signs=not ca, certifies=ca), critical=True))
    if not ca or purposes:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(purposes or _CLIENT)),
                                        critical=False)
    certificate = builder.sign(issuer.private_key, hashes.SHA256())
    return IssuedCertificate.from_parts(name=name, role=Role.VEN, certificate=certificate,
                                        private_key=key)


def _candidates(pki: Pki, directory: Path) -> dict[str, tuple[bool, Candidate]]:
    """label -> (should be accepted, candidate)."""
    root = pki.authority
    sub_ca = _mint("sub-ca", root, ca=True)  # CA:TRUE, below a pathlen:0 root
    expired = CertificateAuthority(certificate=root.certificate, private_key=root.private_key,
                                   clock=lambda: _NOW - timedelta(days=30))
    revoked = pki.revoked_ven
    made: dict[str, tuple[bool, Callable[[], Candidate]]] = {
        "honest": (True, lambda: Candidate(root.issue("chain-honest"), directory)),
        "under a sub-CA below pathlen:0": (False, lambda: Candidate(
            _mint("under-sub-ca", sub_ca), directory, (sub_ca,))),
        "serverAuth only": (False, lambda: Candidate(
            _mint("server-only", root, purposes=(ExtendedKeyUsageOID.SERVER_AUTH,)), directory)),
        "KeyUsage without digitalSignature": (False, lambda: Candidate(
            _mint("no-signing", root, usage=_usage(signs=False, certifies=False)), directory)),
        "expired": (False, lambda: Candidate(
            expired.issue("chain-expired", lifetime=timedelta(days=1)), directory)),
        "revoked by the CRL": (False, lambda: Candidate(IssuedCertificate.from_parts(
            name="chain-revoked", role=Role.VEN, certificate=x509.load_pem_x509_certificate(
                revoked.cert_pem), private_key=_key(revoked.key)), directory)),
    }
    return {label: (accepted, make()) for label, (accepted, make) in made.items()}


def _key(path: Path):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    return load_pem_private_key(path.read_bytes(), None)


async def test_signature_and_tls_give_one_verdict_per_certificate(
        pki: Pki, sqlite_url: str, tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    shutil.copy(pki.crl, crl)
    signatures = SignatureSettings(trusted=(pki.ca_cert,), require=True, bind_to_peer=False)
    candidates = _candidates(pki, tmp_path)
    verdicts: dict[str, tuple[bool, bool, str]] = {}
    async with served_vtn(vtn_config(pki, sqlite_url, tls_crl=crl,
                                     signatures=signatures)) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        await ven.register()
        for label, (_, candidate) in candidates.items():
            ven.codec = Codec(signer=candidate.signer())
            reply = await ven.send("OadrPoll", ven.poll_body())
            refused = isinstance(reply, Response) and reply.response.code == 459
            why = reply.response.description or "" if isinstance(reply, Response) else ""
            verdicts[label] = (await tls_accepts(vtn.url, pki, candidate), not refused, why)

    for label, (accepted, _) in candidates.items():
        tls, signature, why = verdicts[label]
        assert (tls, signature) == (accepted, accepted), (label, verdicts[label])
        if not accepted:
            assert why.startswith("untrusted certificate"), (label, why)
    assert "path length" in verdicts["under a sub-CA below pathlen:0"][2]
    assert "revoked" in verdicts["revoked by the CRL"][2]


async def test_a_signer_revoked_while_the_vtn_runs_is_refused_at_its_next_signature(
        pki: Pki, sqlite_url: str, tmp_path: Path) -> None:
    """The signature check follows the CRL file as TLS does, for chains it already trusted too;
    an unreadable new version keeps the last good list."""
    crl = tmp_path / "crl.pem"
    crl.write_bytes(pki.authority.revocation_list(()))
    signatures = SignatureSettings(trusted=(pki.ca_cert,), require=True, bind_to_peer=False)
    victim = Candidate(pki.authority.issue("chain-victim"), tmp_path)
    async with served_vtn(vtn_config(pki, sqlite_url, tls_crl=crl,
                                     signatures=signatures)) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        await ven.register()
        ven.codec = Codec(signer=victim.signer())

        async def description() -> str:
            reply = await ven.send("OadrPoll", ven.poll_body())
            refused = isinstance(reply, Response) and reply.response.code == 459
            return (reply.response.description or "") if refused else ""  # type: ignore[union-attr]

        assert await description() == ""
        crl.write_bytes(pki.authority.revocation_list(
            (x509.load_pem_x509_certificate(victim.cert_pem),)))
        assert "is revoked" in await description()
        crl.write_bytes(b"not a CRL at all")
        assert "is revoked" in await description()


def _replace(path: Path, data: bytes) -> None:
    """A new file version, as an operator's tooling writes one (a new inode: seen as changed)."""
    fresh = path.with_suffix(".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


async def test_a_crl_that_cannot_vouch_refuses_the_signer_as_tls_refuses_the_client(
        pki: Pki, sqlite_url: str, tmp_path: Path) -> None:
    """With a CRL file configured, the CA's list must be there, current and signed by the CA: a
    stale one, only another CA's, or one in the CA's name signed by another key make TLS refuse a
    new client of that CA and the signature check refuse its signer alike; the current one lets
    both in. (Signed polls go over an honest VEN's connection opened before, kept alive.)"""
    crl = tmp_path / "crl.pem"
    crl.write_bytes(pki.authority.revocation_list(()))
    impostor = CertificateAuthority(certificate=pki.authority.certificate,
                                    private_key=generate_key(KeyType.EC))
    last_month = CertificateAuthority(certificate=pki.authority.certificate,
                                      private_key=pki.authority.private_key,
                                      clock=lambda: _NOW - timedelta(days=30))
    lists = {
        "current": (True, pki.authority.revocation_list(())),
        "stale": (False, last_month.revocation_list(())),  # next update was due 23 days ago
        "another CA's only": (False, CertificateAuthority.create(
            common_name="another CA").revocation_list(())),
        "the CA's name, another key": (False, impostor.revocation_list(())),
    }
    candidate = Candidate(pki.authority.issue("crl-candidate"), tmp_path)
    signatures = SignatureSettings(trusted=(pki.ca_cert,), require=True, bind_to_peer=False)
    verdicts: dict[str, tuple[bool, bool, str]] = {}
    async with served_vtn(vtn_config(pki, sqlite_url, tls_crl=crl,
                                     signatures=signatures)) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        await ven.register()
        ven.codec = Codec(signer=candidate.signer())
        for label, (_, data) in lists.items():
            _replace(crl, data)
            reply = await ven.send("OadrPoll", ven.poll_body())
            refused = isinstance(reply, Response) and reply.response.code == 459
            why = reply.response.description or "" if isinstance(reply, Response) else ""
            verdicts[label] = (await tls_accepts(vtn.url, pki, candidate), not refused, why)

    for label, (accepted, _) in lists.items():
        tls, signature, why = verdicts[label]
        assert (tls, signature) == (accepted, accepted), (label, verdicts[label])
        if not accepted:
            assert why.startswith("untrusted certificate"), (label, why)
    assert "not current" in verdicts["stale"][2]
    assert "no CRL from" in verdicts["another CA's only"][2]
    assert "no CRL from" in verdicts["the CA's name, another key"][2]

def _open_root() -> CertificateAuthority:
    """A CA that, unlike the session's, allows sub-CAs (no pathLen)."""
    key = generate_key(KeyType.EC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "open root")])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - timedelta(minutes=5)).not_valid_after(_NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(signs=False, certifies=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    return CertificateAuthority(certificate=certificate, private_key=key)


async def _handshake(*, server: Candidate, client: Candidate, ca: Path) -> bool:
    """Whether mutual TLS on loopback succeeds, each side verifying the other against ``ca``."""

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(
        answer, "127.0.0.1", 0, ssl=server_context(cert=server.cert, key=server.key, ca=ca))
    port = listener.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(cert=client.cert, key=client.key, ca=ca,
                                                      check_hostname=False))
            try:
                return await reader.read(2) == b"ok"
            finally:
                writer.close()
    except (ssl.SSLError, ConnectionError):
        return False
    finally:
        listener.close()
        await listener.wait_closed()


def _signature_accepted(candidate: Candidate, ca_pem: bytes, purpose: Purpose) -> bool:
    wire = Codec(signer=candidate.signer()).encode(Poll(ven_id="v"))
    try:
        Codec(verifier=Verifier(ca_pem, purpose=purpose)).decode(wire)
    except SignatureInvalid as exc:
        assert exc.reason.startswith("untrusted certificate"), exc.reason
        return False
    return True


async def test_issuer_and_purpose_rules_agree_with_tls_both_ways(tmp_path: Path) -> None:
    """Below a root that allows sub-CAs: issuers' KeyUsage and ExtendedKeyUsage, CA:FALSE
    issuers, and serverAuth for a VTN's signatures (checked by a VEN) as a TLS client checks it."""
    root = _open_root()
    ca = tmp_path / "open-root.pem"
    ca.write_bytes(root.cert_pem)
    good_sub = _mint("sub", root, ca=True)
    no_cert_sign = _mint("sub-no-cert-sign", root, ca=True,
                         usage=_usage(signs=True, certifies=False))
    server_sub = _mint("sub-server-only", root, ca=True,
                       purposes=(ExtendedKeyUsageOID.SERVER_AUTH,))
    not_ca = _mint("not-a-ca", root)
    vtn = Candidate(root.issue("open-vtn", Role.VTN), tmp_path)
    ven = Candidate(root.issue("open-ven", Role.VEN), tmp_path)
    clients = {
        "under a proper sub-CA": (True, Candidate(_mint("l1", good_sub), tmp_path, (good_sub,))),
        "issuer KeyUsage without keyCertSign": (False, Candidate(
            _mint("l2", no_cert_sign), tmp_path, (no_cert_sign,))),
        "issuer ExtendedKeyUsage serverAuth only": (False, Candidate(
            _mint("l3", server_sub), tmp_path, (server_sub,))),
        "issuer CA:FALSE": (False, Candidate(_mint("l4", not_ca), tmp_path, (not_ca,))),
    }
    for label, (accepted, candidate) in clients.items():
        tls = await _handshake(server=vtn, client=candidate, ca=ca)
        signed = _signature_accepted(candidate, root.cert_pem, Purpose.CLIENT)
        assert (tls, signed) == (accepted, accepted), label

    servers = {"a VTN certificate": (True, vtn),
               "clientAuth only": (False, Candidate(_mint("l5", root), tmp_path))}
    for label, (accepted, candidate) in servers.items():
        tls = await _handshake(server=candidate, client=ven, ca=ca)
        signed = _signature_accepted(candidate, root.cert_pem, Purpose.SERVER)
        assert (tls, signed) == (accepted, accepted), label


def test_crowdflex_ven_checks_its_vtns_signatures_for_server_auth(pki: Pki) -> None:
    """``crowdflex ven``'s codec (``ven.config.wire_codec``): the VTN's certificate verifies, a
    VEN certificate of the same CA (clientAuth only) does not."""
    from ven.config import VenConfig, wire_codec

    codec = wire_codec(VenConfig(vtn_url="https://vtn.invalid", ven_name="v",
                                 trusted_signers=(pki.ca_cert,)))
    for files, accepted in ((pki.vtn, True), (pki.vens[0], False)):
        wire = Codec(signer=Signer.from_files(files.key, files.cert)).encode(Poll(ven_id="v"))
        try:
            codec.decode(wire)
        except SignatureInvalid as exc:
            assert not accepted and "serverAuth" in exc.reason, exc.reason
        else:
            assert accepted
