"""What a hostile signer can make a running VTN spend (security review 2, finding 1).

The review's attack: any VEN certificate, a 663 KB payload whose SignedInfo holds 1,000
references to one 400 KB element, every digest and the signature value correct, cost ~3.4 s of
event-loop CPU before the 459. Here, over real mutual TLS on loopback, with the VTN verifying
signatures: such payloads are refused before any digest or signature value is computed (the
Verifier's two costly steps are wrapped and record the nonce of each signature they work on),
an honest VEN's polls are answered meanwhile, and a VEN whose signatures keep failing is turned
away before its body is read while other VENs are served. Nothing is timed.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from schemas import Message, Response, Signer, _dsig
from tests.fuzz.signing import reference_bomb, resign
from tests.kit.clock import Clock
from tests.kit.pki import Pki
from tests.kit.signed import SignedVen, signed_ven
from tests.kit.vtn import served_vtn, vtn_config
from vtn.signing import SignatureSettings

_NONCE = re.compile(rb"<dsp:nonce>([^<]+)</dsp:nonce>")
DS = "{http://www.w3.org/2000/09/xmldsig#}"


@dataclass
class Work:
    """Nonces of the signatures each costly verification step ran on, and on which thread."""

    values: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    vtn_threads: set[int] = field(default_factory=set)  # where the VEN's signatures were checked


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> Iterator[Work]:
    seen = Work()
    vtn_der = x509.load_pem_x509_certificate(pki.vtn.cert_pem).public_bytes(Encoding.DER)

    def counting(step: Callable[..., None], into: list[str]) -> Callable[..., None]:
        def counted(parts: _dsig.SignedParts, *args: Any) -> None:
            into.append(parts.nonce)
            if parts.certificate_ders[0] != vtn_der:  # not a VEN checking the VTN's reply
                seen.vtn_threads.add(threading.get_ident())
            step(parts, *args)
        return counted

    monkeypatch.setattr(_dsig, "check_value", counting(_dsig.check_value, seen.values))
    monkeypatch.setattr(_dsig, "check_digests", counting(_dsig.check_digests, seen.digests))
    yield seen


def _nonce(body: bytes) -> str:
    found = _NONCE.search(body)
    assert found is not None
    return found.group(1).decode()


def _settings(pki: Pki, **overrides: Any) -> SignatureSettings:
    return replace(SignatureSettings(trusted=(pki.ca_cert,), require=True, sign_replies=True),
                   **overrides)


def _code(reply: Message) -> int:
    return reply.response.code if isinstance(reply, Response) else 200


async def _post(ven: SignedVen, body: bytes) -> tuple[int, str, bytes]:
    async with ven.session.post(f"{ven.url}/OadrPoll", data=body,
                                headers={"Content-Type": "application/xml"}) as reply:
        return reply.status, reply.headers.get("Retry-After", ""), await reply.read()


def _bad_value(ven: SignedVen) -> bytes:
    """A well-shaped signed poll whose signature value does not verify."""
    root = etree.fromstring(ven.poll_body())
    value = root.find(f"{DS}Signature/{DS}SignatureValue")
    assert value is not None and value.text
    value.text = ("B" if value.text[0] == "A" else "A") + value.text[1:]
    return etree.tostring(root)


async def test_reference_bombs_are_refused_unworked_while_an_honest_ven_polls(
        pki: Pki, sqlite_url: str, work: Work) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=_settings(pki))) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as honest, \
            signed_ven(vtn.url, pki, pki.vens[1]) as hostile:
        await honest.register()
        await hostile.register()
        signer = Signer.from_files(pki.vens[1].key, pki.vens[1].cert)
        bombs = [reference_bomb(hostile.poll_body(), signer) for _ in range(4)]
        assert all(len(bomb) > 600_000 for bomb in bombs)
        polls = [honest.poll_body() for _ in range(6)]

        async def attack() -> list[Message]:
            return [await hostile.send("OadrPoll", bomb) for bomb in bombs]

        async def poll() -> list[Message]:
            return [await honest.send("OadrPoll", body) for body in polls]

        async with asyncio.timeout(60):
            refused, answered = await asyncio.gather(attack(), poll())

    for reply in refused:
        assert _code(reply) == 459, reply
        assert "1000 ds:Reference elements" in (reply.response.description or "")  # type: ignore[union-attr]
    assert all(_code(reply) != 459 for reply in answered), answered
    hostile_nonces = {_nonce(bomb) for bomb in bombs}
    assert hostile_nonces.isdisjoint(work.values) and hostile_nonces.isdisjoint(work.digests)
    assert {_nonce(body) for body in polls} <= set(work.digests)


async def test_a_ven_whose_signatures_keep_failing_is_turned_away_unread(
        pki: Pki, sqlite_url: str, work: Work) -> None:
    clock = Clock(datetime.now(UTC))
    settings = _settings(pki, sign_replies=False)  # replies signed at a moved clock look future
    config = vtn_config(pki, sqlite_url, signatures=settings)
    async with served_vtn(config, clock=clock) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as honest, \
            signed_ven(vtn.url, pki, pki.vens[1]) as hostile:
        await honest.register()
        await hostile.register()
        for _ in range(settings.failures_allowed):
            reply = await hostile.send("OadrPoll", _bad_value(hostile))
            assert "bad signature value" in (reply.response.description or "")  # type: ignore[attr-defined]
        turned_away = [_bad_value(hostile), hostile.poll_body()]  # even a good one, for now
        for body in turned_away:
            status, retry_after, _ = await _post(hostile, body)
            assert status == 429 and int(retry_after) == 60
        assert {_nonce(body) for body in turned_away}.isdisjoint(work.values)  # unchecked
        served = honest.poll_body()
        assert _code(await honest.send("OadrPoll", served)) != 459
        assert _nonce(served) in work.digests

        clock.now += settings.failure_period
        assert _code(await hostile.send("OadrPoll", hostile.poll_body())) != 459


async def test_large_signed_bodies_are_verified_off_the_event_loop(
        pki: Pki, sqlite_url: str, work: Work) -> None:
    """With ``offload_bytes=0`` every signed payload takes the worker-thread path."""
    config = vtn_config(pki, sqlite_url, signatures=_settings(pki, offload_bytes=0))
    async with served_vtn(config) as vtn, signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        await ven.register()
        body = ven.poll_body()
        assert _code(await ven.send("OadrPoll", body)) != 459
        assert _nonce(body) in work.digests
        assert work.vtn_threads - {threading.get_ident()}, "verified on the event loop"

        # a hostile shape is still refused there, and refusals still count against the VEN
        root = etree.fromstring(ven.poll_body())
        references = root.findall(f"{DS}Signature/{DS}SignedInfo/{DS}Reference")
        references[1].set("URI", references[0].get("URI") or "")
        signer = Signer.from_files(pki.vens[0].key, pki.vens[0].cert)
        hostile = resign(root, signer)
        reply = await ven.send("OadrPoll", hostile)
        assert "cover the same element" in (reply.response.description or "")  # type: ignore[attr-defined]
        assert _nonce(hostile) not in work.values + work.digests


async def test_one_verification_per_ven_off_the_loop_while_other_vens_are_served(
        pki: Pki, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A VEN's verification held on its worker thread: the same VEN's next signed payload is
    answered 429 at once, another VEN's is verified and answered meanwhile; with both worker
    slots held, a third VEN's payload is answered 503 unverified, and served once they are free."""
    held, entered = threading.Event(), threading.Event()
    hold: set[str] = set()
    digests = _dsig.check_digests

    work_nonces: list[str] = []

    def holding(parts: _dsig.SignedParts) -> None:
        work_nonces.append(parts.nonce)
        if parts.nonce in hold:
            entered.set()
            held.wait(30)
        digests(parts)

    monkeypatch.setattr(_dsig, "check_digests", holding)
    config = vtn_config(pki, sqlite_url, signatures=_settings(pki, offload_bytes=0))
    async with served_vtn(config) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as busy, \
            signed_ven(vtn.url, pki, pki.vens[1]) as other, \
            signed_ven(vtn.url, pki, pki.vens[2]) as third:
        for ven in (busy, other, third):
            await ven.register()
        first, second = busy.poll_body(), other.poll_body()
        hold.add(_nonce(first))
        async with asyncio.timeout(30):
            pending = asyncio.create_task(busy.send("OadrPoll", first))
            try:
                await asyncio.to_thread(entered.wait, 30)
                status, retry_after, _ = await _post(busy, busy.poll_body())
                assert (status, retry_after) == (429, "1")
                assert _code(await other.send("OadrPoll", other.poll_body())) != 459
                assert not pending.done()

                # both slots (offload_slots=2) held: a third VEN is told to come back, unread
                entered.clear()
                hold.add(_nonce(second))
                blocked = asyncio.create_task(other.send("OadrPoll", second))
                await asyncio.to_thread(entered.wait, 30)
                refused = third.poll_body()
                status, retry_after, _ = await _post(third, refused)
                assert (status, retry_after) == (503, "1")
                assert _nonce(refused) not in work_nonces
            finally:
                held.set()
            assert _code(await pending) != 459 and _code(await blocked) != 459
        assert _code(await third.send("OadrPoll", third.poll_body())) != 459
