"""Signatures and ReplayProtect on a running VTN (``VtnConfig.signatures``), against real VENs'
signed bytes: each attack is refused with OpenADR 459 and a description that says which check
failed, the replies are signed by the VTN, and the nonce memory survives a VTN restart.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from schemas import (
    Codec,
    Message,
    Poll,
    Response,
    SignatureState,
    utc_now,
)
from tests.kit.pki import Pki
from tests.kit.signed import signed_ven
from tests.kit.vtn import served_vtn, vtn_config
from vtn.signing import SignatureSettings


def _settings(pki: Pki) -> SignatureSettings:
    return SignatureSettings(trusted=(pki.ca_cert,), require=True, sign_replies=True)


def _refusal(reply: Message) -> str:
    assert isinstance(reply, Response), reply
    assert reply.response.code == 459, reply
    return reply.response.description or ""


async def test_signed_exchange_is_accepted_and_replies_are_signed(
        pki: Pki, sqlite_url: str) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=_settings(pki))) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        reply = await ven.register()
        assert reply.signature is SignatureState.VERIFIED
        *queued, polled = await ven.drain()
        assert all(m.signature is SignatureState.VERIFIED for m in queued)
        assert isinstance(polled, Response) and polled.response.code == 200
        assert polled.signature is SignatureState.VERIFIED


async def test_a_repeated_poll_gets_a_freshly_signed_reply_each_time(
        pki: Pki, sqlite_url: str) -> None:
    """The VTN reuses encoded replies for unsigned exchanges (vtn.repeats); signed ones never."""
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=_settings(pki))) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        await ven.register()
        await ven.drain()  # what registration queued
        replies = []
        for _ in range(2):
            async with ven.session.post(f"{vtn.url}/OadrPoll", data=ven.poll_body(),
                                        headers={"Content-Type": "application/xml"}) as reply:
                replies.append(await reply.read())
        assert all(b"ReplayProtect" in r for r in replies)
        assert replies[0] != replies[1]


async def test_each_attack_is_refused_with_its_own_explanation(
        pki: Pki, sqlite_url: str) -> None:
    descriptions: dict[str, str] = {}
    ten_min = timedelta(minutes=10)
    async with served_vtn(vtn_config(pki, sqlite_url, signatures=_settings(pki))) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as ven, \
            signed_ven(vtn.url, pki, pki.vens[0], clock=lambda: utc_now() - ten_min) as stale, \
            signed_ven(vtn.url, pki, pki.vens[0], clock=lambda: utc_now() + ten_min) as ahead, \
            signed_ven(vtn.url, pki, pki.vens[0], signer=pki.vens[1]) as borrowed, \
            signed_ven(vtn.url, pki, pki.vens[0], signer=pki.untrusted_ven) as stranger:
        await ven.register()
        for other in (stale, ahead, borrowed, stranger):
            other.ven_id = ven.ven_id

        unsigned = Codec().encode(Poll(ven_id=ven.ven_id))
        descriptions["unsigned"] = _refusal(await ven.send("OadrPoll", unsigned))

        body = ven.poll_body()
        accepted = await ven.send("OadrPoll", body)
        assert not (isinstance(accepted, Response) and accepted.response.code == 459), accepted
        descriptions["replayed"] = _refusal(await ven.send("OadrPoll", body))

        # flip the venID's last hex digit to a different one (a fixed "0" is no change 1 in 16)
        flipped = ven.ven_id[:-1] + ("1" if ven.ven_id.endswith("0") else "0")
        original = ven.poll_body()
        tampered = original.replace(ven.ven_id.encode(), flipped.encode())
        assert tampered != original
        descriptions["tampered"] = _refusal(await ven.send("OadrPoll", tampered))
        descriptions["old"] = _refusal(await stale.send("OadrPoll", stale.poll_body()))
        descriptions["future"] = _refusal(await ahead.send("OadrPoll", ahead.poll_body()))
        descriptions["not the TLS peer"] = _refusal(
            await borrowed.send("OadrPoll", borrowed.poll_body()))
        descriptions["untrusted"] = _refusal(
            await stranger.send("OadrPoll", stranger.poll_body()))

    expected_words = {
        "unsigned": "unsigned", "replayed": "already used", "tampered": "digest mismatch",
        "old": "old", "future": "in the future", "not the TLS peer": "TLS client",
        "untrusted": "untrusted certificate",
    }
    for attack, words in expected_words.items():
        assert words in descriptions[attack], (attack, descriptions[attack])
    assert len(set(descriptions.values())) == len(descriptions), descriptions
    # the skew is 600 s plus however long the request took to reach the VTN on a loaded machine
    old_s = int(re.search(r"(\d+) s old", descriptions["old"]).group(1))  # type: ignore[union-attr]
    ahead_s = int(re.search(r"(\d+) s in the future", descriptions["future"]).group(1))  # type: ignore[union-attr]
    assert 600 <= old_s < 660 and 540 < ahead_s <= 600, descriptions


async def test_nonce_memory_survives_a_vtn_restart(
        pki: Pki, storage_url: str) -> None:
    config = vtn_config(pki, storage_url, signatures=_settings(pki))
    async with served_vtn(config) as vtn, signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        await ven.register()
        body = ven.poll_body()
        first = await ven.send("OadrPoll", body)
        assert not (isinstance(first, Response) and first.response.code == 459), first
        ven_id = ven.ven_id

    async with served_vtn(config) as restarted, \
            signed_ven(restarted.url, pki, pki.vens[0]) as ven:
        ven.ven_id = ven_id
        description = _refusal(await ven.send("OadrPoll", body))
        assert "already used" in description
        fresh = await ven.send("OadrPoll", ven.poll_body())  # a new nonce still passes
        assert not (isinstance(fresh, Response) and fresh.response.code == 459), fresh


async def test_signatures_off_by_default_accepts_signed_payloads_unverified(
        pki: Pki, sqlite_url: str) -> None:
    async with served_vtn(vtn_config(pki, sqlite_url)) as vtn, \
            signed_ven(vtn.url, pki, pki.vens[0]) as ven:
        ven.reader = Codec()
        reply = await ven.register()
        assert reply.signature is SignatureState.ABSENT


def test_requiring_signatures_without_trust_is_a_config_error(pki: Pki, sqlite_url: str) -> None:
    from vtn.app import create_app

    with pytest.raises(ValueError, match="trusted"):
        create_app(vtn_config(pki, sqlite_url, signatures=SignatureSettings(require=True)))
