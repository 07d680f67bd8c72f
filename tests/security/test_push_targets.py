"""Finding 5 of the second security review: push as an SSRF. Real VTN, mutual TLS on loopback.

What it tried: registering for push (httpPullModel false) with transport addresses that make the
VTN POST in plain text, to loopback, to link-local metadata services and private networks, or to
a path and query of the VEN's choosing (``?x=`` swallows the service name the VTN appends). Each
is refused at registration with its OpenADR code (454 for the shape, 451 for the target) and a
reason, and nothing is stored. A host name is checked once resolved, on every connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from schemas import CreatedPartyRegistration, CreatePartyRegistration, Message, Response
from tests.kit.vtn import RunningVtn, running_vtn
from tests.vtn.harness import RawVen, raw_ven
from vtn.config import ConfigError, parse_config
from vtn.pushtargets import PushTargets, TargetResolver

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Scene:
    vtn: RunningVtn
    attacker: RawVen
    attacker_fingerprint: str
    honest: RawVen


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def scene(pki, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scene]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ssrf') / 'vtn.db'}"
    async with running_vtn(pki, url) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as attacker, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[3])) as honest:
        await honest.register("honest")
        yield Scene(vtn, attacker, pki.vens[2].fingerprint, honest)


REFUSED = {
    "http://8.8.8.8/push": (454, "https"),  # plain text, no mutual TLS
    "https://8.8.8.8/push?x=": (454, "query"),
    "https://8.8.8.8/push#x": (454, "fragment"),
    "https://user:secret@8.8.8.8/push": (454, "user info"),
    "https://8.8.8.8:99999/push": (454, "not a URL"),
    "https://127.0.0.1:8081/admin": (451, "not a public address"),  # the admin API's port
    "https://[::1]:8443/": (451, "not a public address"),
    "https://[::ffff:127.0.0.1]:8443/": (451, "not a public address"),
    "https://169.254.169.254/latest/meta-data": (451, "not a public address"),
    "https://10.0.0.7/push": (451, "not a public address"),
    "https://192.168.1.1/push": (451, "not a public address"),
    "https://100.64.0.1/push": (451, "not a public address"),
    "https://localhost:8443/push": (451, "localhost"),
    # IPv6 addresses that stand for an IPv4 address a translator or tunnel reaches (red team
    # of issue 14): the embedded address is what is judged
    "https://[64:ff9b::a00:1]/push": (451, "not a public address"),  # NAT64, 10.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/push": (451, "not a public address"),  # NAT64, metadata
    "https://[64:ff9b:1::a00:1]/push": (451, "not a public address"),  # local-use NAT64
    "https://[::ffff:0:a00:1]/push": (451, "not a public address"),  # IPv4-translated
    "https://[::127.0.0.1]:8081/admin": (451, "not a public address"),  # IPv4-compatible
    "https://[2002:a00:1::1]/push": (451, "not a public address"),  # 6to4 of 10.0.0.1
}


@pytest.mark.parametrize("address", sorted(REFUSED))
async def test_unsafe_transport_address_is_refused_with_its_code(scene: Scene,
                                                                  address: str) -> None:
    code, reason = REFUSED[address]
    reply = await scene.attacker.post("EiRegisterParty", CreatePartyRegistration(
        request_id="r", ven_name="ssrf", http_pull_model=False, transport_address=address))
    assert isinstance(reply, CreatedPartyRegistration | Response)
    assert reply.response.code == code, reply
    assert reason in (reply.response.description or "")
    assert await scene.vtn.ctx.storage.vens.by_fingerprint(scene.attacker_fingerprint) is None
    assert isinstance(await scene.honest.poll(), Message)


async def test_push_without_an_address_is_454(scene: Scene) -> None:
    reply = await scene.attacker.post("EiRegisterParty", CreatePartyRegistration(
        request_id="r", ven_name="no-address", http_pull_model=False))
    assert isinstance(reply, CreatedPartyRegistration | Response)
    assert reply.response.code == 454
    assert "oadrTransportAddress" in (reply.response.description or "")
    assert await scene.vtn.ctx.storage.vens.by_fingerprint(scene.attacker_fingerprint) is None


async def test_a_pull_vens_address_is_not_used_so_not_checked(scene: Scene) -> None:
    """openleadr's pull VEN sends the text "None" as its transport address."""
    reply = await scene.attacker.post("EiRegisterParty", CreatePartyRegistration(
        request_id="r", ven_name="puller", http_pull_model=True, transport_address="None"))
    assert isinstance(reply, CreatedPartyRegistration) and reply.response.code == 200
    registration = await scene.vtn.ctx.storage.vens.by_fingerprint(scene.attacker_fingerprint)
    assert registration is not None and registration.http_pull_model
    await scene.vtn.ctx.storage.vens.cancel(registration.registration_id,
                                            scene.vtn.ctx.clock())


async def test_a_host_name_is_checked_once_resolved() -> None:
    """The VTN connects through a resolver that keeps only permitted addresses: "localhost"
    resolves to loopback only, so no connection is attempted; allowed explicitly, it is kept."""
    with pytest.raises(OSError, match="no address the VTN may push to"):
        await TargetResolver(PushTargets()).resolve("localhost", 443)
    allowed = await TargetResolver(PushTargets.allowing(["127.0.0.0/8"])).resolve(
        "localhost", 443)
    assert {result["host"] for result in allowed} == {"127.0.0.1"}


@pytest.mark.parametrize("table", [{"allow_private_targets": "10.0.0.0/8"},
                                   {"allow_private_targets": ["not-a-network"]},
                                   {"allow_private_targets": [10]},
                                   {"allow_privat_targets": []}])
async def test_bad_push_tables_are_refused_at_load(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="push"):
        parse_config({"push": table})
