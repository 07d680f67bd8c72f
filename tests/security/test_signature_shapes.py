"""What else a hostile signer may make a running VTN spend: shapes the first fix did not bound.

A red-team pass over the review-2 defences, over real mutual TLS on loopback with the VTN
verifying signatures; every hostile payload here is smaller than ``offload_bytes``, so before
these fixes its whole cost fell on the event loop (figures: ``python -m bench sigshapes``):

- namespace declarations: libxml2's c14n costs about elements x (declarations in scope)^2, so
  2,000 declarations on oadrPayload made a registered VEN's correctly signed 50 KB poll cost
  303 ms, mostly before its signature value was even checked;
- attributes inside ds:Signature (c14n sorts them in quadratic time) were not counted, and ids
  in an extra ds:Object were all mapped before the size check refused it;
- a carried "chain" of same-subject CAs made cryptography's path building try every ordering
  (236 ms for 4 with 2,046-bit RSA exponents, for one refused signature), and RSA-1024, P-192
  and P-224 signers, which TLS refuses, passed.

Each is now refused before the work it would cause: the Verifier's costly steps (mapping ids,
canonicalising, the signature value, path building, the digests) are wrapped and record the
nonce of the payload they work on. Nothing is timed. The correctness rules no test checked
(what the second reference covers, the profile's signature methods, text split by comments)
are tried here too.
"""

from __future__ import annotations

import re
import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from schemas import Codec, Message, Poll, Response, Signer, _dsig
from schemas.certpath import PathCheck
from tests.fuzz.signing import (
    RawSigner,
    attribute_flood,
    id_flood,
    namespace_flood,
    resign,
    rsa_with_big_exponent,
)
from tests.kit.pki import Pki
from tests.kit.signed import signed_ven
from tests.kit.vtn import served_vtn, vtn_config
from vtn.signing import SignatureSettings

DS = "{http://www.w3.org/2000/09/xmldsig#}"
_NONCE = re.compile(rb"<dsp:nonce>([^<]+)</dsp:nonce>")
_NOW = datetime.now(UTC)


@dataclass
class Work:
    """Nonces of the payloads each costly verification step ran on."""

    canonical: set[str] = field(default_factory=set)
    id_maps: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    paths: int = 0
    digests: set[str] = field(default_factory=set)

    def touched(self, nonce: str) -> bool:
        return nonce in self.canonical | self.id_maps | self.values | self.digests

    def forget(self) -> None:
        """Drop what the test itself did (re-signing hostile payloads canonicalises them)."""
        self.canonical.clear()
        self.id_maps.clear()
        self.values.clear()
        self.digests.clear()


def _document_nonce(element: etree._Element) -> str:
    found = element.getroottree().getroot().find(f".//{{{_dsig.DSP}}}nonce")
    return found.text or "" if found is not None else ""


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    seen = Work()
    canonical, ids, check_value, check_digests = (
        _dsig._canonical, _dsig._ids, _dsig.check_value, _dsig.check_digests)
    path = PathCheck.path

    def canonicalising(element: etree._Element, method: etree._Element | None) -> bytes:
        seen.canonical.add(_document_nonce(element))
        return canonical(element, method)

    def mapping(root: etree._Element) -> dict[str, list[etree._Element]]:
        seen.id_maps.add(_document_nonce(root))
        return ids(root)

    def valuing(parts: _dsig.SignedParts, *args: Any) -> None:
        seen.values.add(parts.nonce)
        check_value(parts, *args)

    def digesting(parts: _dsig.SignedParts) -> None:
        seen.digests.add(parts.nonce)
        check_digests(parts)

    def building(self: PathCheck, *args: Any) -> Any:
        seen.paths += 1
        return path(self, *args)

    monkeypatch.setattr(_dsig, "_canonical", canonicalising)
    monkeypatch.setattr(_dsig, "_ids", mapping)
    monkeypatch.setattr(_dsig, "check_value", valuing)
    monkeypatch.setattr(_dsig, "check_digests", digesting)
    monkeypatch.setattr(PathCheck, "path", building)
    yield seen


def _settings(pki: Pki) -> SignatureSettings:
    return SignatureSettings(trusted=(pki.ca_cert,), require=True)


def _nonce(body: bytes) -> str:
    found = _NONCE.search(body)
    assert found is not None
    return found.group(1).decode()


def _refusal(reply: Message) -> str:
    """The 459 description, or "" when the payload was not refused for its signature."""
    if isinstance(reply, Response) and reply.response.code == 459:
        return reply.response.description or ""
    return ""


async def test_namespace_and_attribute_floods_are_refused_before_any_canonicalisation(
        pki: Pki, sqlite_url: str, work: Work) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=_settings(pki))) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as honest, \
            signed_ven(vtn.url, pki, pki.vens[1]) as hostile:
        await honest.register()
        await hostile.register()
        signer = Signer.from_files(pki.vens[1].key, pki.vens[1].cert)
        # with its own trusted key: every digest and signature value is correct
        floods = {
            "namespaces": namespace_flood(hostile.poll_body(), signer, 2000),
            "attributes": attribute_flood(hostile.poll_body(), signer, 6000),
            "ids": id_flood(hostile.poll_body(), signer, 1000),
        }
        # ... while a few extra declarations, inclusive c14n and one more attribute still verify
        modest = attribute_flood(namespace_flood(hostile.poll_body(), signer, 10), signer, 1)
        work.forget()
        offload = SignatureSettings().offload_bytes
        assert all(len(body) < offload for body in floods.values())  # all on the event loop
        refusals = {label: _refusal(await hostile.send("OadrPoll", body))
                    for label, body in floods.items()}
        honest_poll = honest.poll_body()
        assert _refusal(await honest.send("OadrPoll", honest_poll)) == ""
        assert _refusal(await hostile.send("OadrPoll", modest)) == ""

    assert "namespace declarations in scope" in refusals["namespaces"], refusals
    assert "64 nodes (elements and attributes)" in refusals["attributes"], refusals
    assert "64 nodes (elements and attributes)" in refusals["ids"], refusals
    for label, body in floods.items():
        assert not work.touched(_nonce(body)), label
    assert _nonce(honest_poll) in work.digests and _nonce(modest) in work.digests


# ---------------------------------------------------------------- carried certificates


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificate(subject: str, issuer: str | x509.Name, public_key: Any, signing_key: Any, *,
                 ca: bool) -> x509.Certificate:
    issuer_name = _name(issuer) if isinstance(issuer, str) else issuer
    return (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - timedelta(minutes=5)).not_valid_after(_NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signing_key, hashes.SHA256()))


def _signed_by(signer: RawSigner, ven_id: str) -> bytes:
    root = Codec().build(Poll(ven_id=ven_id))
    _dsig.sign(root, signer, timestamp=datetime.now(UTC), nonce=secrets.token_hex(16))
    return etree.tostring(root)


def _hostile_chains(pki: Pki) -> dict[str, tuple[RawSigner, str]]:
    """label -> (a signer carrying that chain, the refusal it must get)."""
    mesh_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("mesh-leaf", "X", leaf_key.public_key(), mesh_key, ca=False)

    def mesh(count: int) -> tuple[x509.Certificate, ...]:
        return tuple(_certificate("X", "X", mesh_key.public_key(), mesh_key, ca=True)
                     for _ in range(count))

    costly = rsa_with_big_exponent()
    small = rsa.generate_private_key(65537, 1024)
    authority, issuer = pki.authority.private_key, pki.authority.certificate.subject
    return {
        "seven certificates": (RawSigner(leaf_key, (leaf, *mesh(6))),
                               "7 certificates carried; at most 6"),
        "three with one subject": (RawSigner(leaf_key, (leaf, *mesh(3))),
                                   "two carried certificates name the same subject"),
        "a 2046-bit RSA exponent": (RawSigner(costly, (_certificate(
            "costly", issuer, costly.public_key(), authority, ca=False),)),
            "2046-bit public exponent"),
        "RSA-1024": (RawSigner(small, (_certificate(
            "small-rsa", issuer, small.public_key(), authority, ca=False),)), "RSA-1024"),
    }


async def test_costly_carried_chains_are_refused_before_any_key_is_used(
        pki: Pki, sqlite_url: str, work: Work) -> None:
    """Same-subject meshes, too many certificates, costly or weak keys: refused before their
    signature value, any path building or any digest."""
    hostile_chains = _hostile_chains(pki)
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=_settings(pki))) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as honest, \
            signed_ven(vtn.url, pki, pki.vens[1]) as hostile:
        await honest.register()
        await hostile.register()
        paths_before = work.paths
        sent: dict[str, tuple[bytes, str]] = {}
        for label, (signer, _) in hostile_chains.items():
            body = _signed_by(signer, hostile.ven_id)
            sent[label] = (body, _refusal(await hostile.send("OadrPoll", body)))
        hostile_paths = work.paths - paths_before
        assert _refusal(await honest.send("OadrPoll", honest.poll_body())) == ""

    for label, (_, expected) in hostile_chains.items():
        body, why = sent[label]
        assert why.startswith("untrusted certificate") and expected in why, (label, why)
        assert _nonce(body) not in work.values | work.digests, label
    assert hostile_paths == 0


# ---------------------------------------------------------------- what the second reference covers


def _uncovered_replay_protect(poll: bytes, signer: Signer) -> bytes:
    """The second reference moved to a ds:Object of its own, leaving ReplayProtect unsigned (its
    nonce and timestamp could then be changed at will)."""
    root = etree.fromstring(poll)
    decoy = etree.SubElement(root[0], DS + "Object", Id="decoy")
    etree.SubElement(decoy, "{urn:decoy}x")
    references = root.findall(f"{DS}Signature/{DS}SignedInfo/{DS}Reference")
    references[1].set("URI", "#decoy")
    return resign(root, signer)


def _covered_in_key_info(poll: bytes, signer: Signer) -> bytes:
    """ReplayProtect moved into ds:KeyInfo and the second reference to it: outside ds:Object."""
    root = etree.fromstring(poll)
    signature = root[0]
    replay = signature.find(f".//{{{_dsig.DSP}}}ReplayProtect")
    key_info, objects = signature.find(DS + "KeyInfo"), signature.findall(DS + "Object")
    assert replay is not None and key_info is not None
    key_info.append(replay)
    key_info.set("Id", "key-info")
    for element in objects:
        signature.remove(element)
    references = root.findall(f"{DS}Signature/{DS}SignedInfo/{DS}Reference")
    references[1].set("URI", "#key-info")
    return resign(root, signer)


async def test_the_second_reference_must_cover_replay_protect_inside_ds_object(
        pki: Pki, sqlite_url: str, work: Work) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=_settings(pki))) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[1]) as hostile:
        await hostile.register()
        signer = Signer.from_files(pki.vens[1].key, pki.vens[1].cert)
        uncovered = _uncovered_replay_protect(hostile.poll_body(), signer)
        key_info = _covered_in_key_info(hostile.poll_body(), signer)
        work.forget()
        assert "dsp:ReplayProtect is not covered by any reference" in _refusal(
            await hostile.send("OadrPoll", uncovered))
        assert "points outside oadrSignedObject and ds:Object" in _refusal(
            await hostile.send("OadrPoll", key_info))
    assert not (work.values | work.digests) & {_nonce(uncovered), _nonce(key_info)}


# ---------------------------------------------------------------- weak keys: TLS agrees


async def _tls_accepts_key(url: str, pki: Pki, key: Any, certificate: x509.Certificate,
                           directory: Path) -> bool:
    """Whether the VTN's handshake admits a client with this key; the client itself is set to
    OpenSSL's security level 0 so that any refusal is the VTN's."""
    cert, key_file = directory / "weak.pem", directory / "weak.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(cafile=pki.ca_cert)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert, key_file)
    body = Codec().encode(Poll(ven_id="x"))
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context)) as session, session.post(
                f"{url}/OadrPoll", data=body, headers={"Content-Type": "application/xml"}) as reply:
            await reply.read()
            return True
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        return False


async def test_keys_tls_refuses_are_refused_as_signers(
        pki: Pki, sqlite_url: str, tmp_path: Path) -> None:
    """RSA-1024, P-192 and P-224 clients (issued by the trusted CA) fail the VTN's handshake, and
    the same certificates fail as signers; RSA-2048 and P-384 pass both. A pinned (self-signed,
    listed in ``trusted``) RSA-1024 certificate is refused as a signer too."""
    keys: dict[str, tuple[bool, Any]] = {
        "RSA-1024": (False, rsa.generate_private_key(65537, 1024)),
        "P-192": (False, ec.generate_private_key(ec.SECP192R1())),
        "P-224": (False, ec.generate_private_key(ec.SECP224R1())),
        "RSA-2048": (True, rsa.generate_private_key(65537, 2048)),
        "P-384": (True, ec.generate_private_key(ec.SECP384R1())),
    }
    issuer = pki.authority.certificate.subject
    pinned_key = rsa.generate_private_key(65537, 1024)
    pinned = _certificate("pinned-RSA-1024", "pinned-RSA-1024", pinned_key.public_key(),
                          pinned_key, ca=False)
    pinned_file = tmp_path / "pinned.pem"
    pinned_file.write_bytes(pinned.public_bytes(serialization.Encoding.PEM))
    signatures = SignatureSettings(trusted=(pki.ca_cert, pinned_file), require=True,
                                   bind_to_peer=False)
    verdicts: dict[str, tuple[bool, str]] = {}
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=signatures)) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        await ven.register()
        for label, (_, key) in keys.items():
            certificate = _certificate(f"weak-{label}", issuer, key.public_key(),
                                       pki.authority.private_key, ca=False)
            why = _refusal(await ven.send(
                "OadrPoll", _signed_by(RawSigner(key, (certificate,)), ven.ven_id)))
            tls = await _tls_accepts_key(vtn.url, pki, key, certificate, tmp_path)
            verdicts[label] = (tls, why)
        pinned_refusal = _refusal(await ven.send(
            "OadrPoll", _signed_by(RawSigner(pinned_key, (pinned,)), ven.ven_id)))

    assert "has an RSA-1024 key" in pinned_refusal, pinned_refusal
    for label, (accepted, _) in keys.items():
        tls, why = verdicts[label]
        assert (tls, why == "") == (accepted, accepted), (label, verdicts[label])
        if not accepted:
            assert why.startswith("untrusted certificate") and "accepted: RSA of" in why, why


_OTHER_METHODS = (
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    _dsig.RSA_SHA256,  # with the VEN's EC key
)


async def test_only_the_profiles_signature_methods_with_their_key_types_verify(
        pki: Pki, sqlite_url: str) -> None:
    """HMAC (a "key" anyone can pick), SHA-1, RSA-PSS and a method for another key type, each on
    a payload whose digests and value the trusted key re-computed: refused, never verified."""
    settings = replace(_settings(pki), failures_allowed=len(_OTHER_METHODS))
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=settings)) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[1]) as ven:
        await ven.register()
        signer = Signer.from_files(pki.vens[1].key, pki.vens[1].cert)
        for algorithm in _OTHER_METHODS:
            root = etree.fromstring(ven.poll_body())
            method = root.find(f"{DS}Signature/{DS}SignedInfo/{DS}SignatureMethod")
            assert method is not None
            method.set("Algorithm", algorithm)
            why = _refusal(await ven.send("OadrPoll", resign(root, signer)))
            assert why.startswith(f"malformed signature: signature method {algorithm!r}"), why


async def test_comments_pis_and_cdata_inside_signed_text_change_nothing(
        pki: Pki, sqlite_url: str) -> None:
    """The classic truncation trick: a comment splitting a signed ID (c14n drops it, a reader
    taking the first text node would see half the ID). The parser drops comments and processing
    instructions and merges CDATA, so the poll still verifies and is answered as the VEN's own."""
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=_settings(pki))) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[1]) as ven:
        await ven.register()
        body = ven.poll_body()
        whole = f">{ven.ven_id}<".encode()
        assert body.count(whole) == 1
        split = (f">{ven.ven_id[:4]}<!--x-->{ven.ven_id[4:8]}<?pi x?>"
                 f"<![CDATA[{ven.ven_id[8:12]}]]>{ven.ven_id[12:]}<").encode()
        reply = await ven.send("OadrPoll", body.replace(whole, split))
    assert not (isinstance(reply, Response) and reply.response.code >= 400), reply
