"""ReplayProtect: nonce reuse, stale and future timestamps, each refused with its own reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

import schemas
from tests.kit.clock import Clock
from tests.kit.signing import POLL, T0, Identity, make_identity


@pytest.fixture(scope="module")
def ven() -> Identity:
    return make_identity("ven")


@pytest.fixture(scope="module")
def schema() -> schemas.SchemaSet:
    return schemas.SchemaSet()


def receiver(
    ven: Identity, schema: schemas.SchemaSet, clock: Clock, guard: schemas.ReplayGuard
) -> schemas.Codec:
    verifier = schemas.Verifier(ven.cert_pem)
    return schemas.Codec(schema=schema, verifier=verifier, replay=guard, clock=clock)


def sign_at(ven: Identity, schema: schemas.SchemaSet, clock: Clock) -> bytes:
    return schemas.Codec(schema=schema, signer=ven.signer(), clock=clock).encode(POLL)


def test_replayed_nonce_is_refused(ven: Identity, schema: schemas.SchemaSet) -> None:
    clock = Clock(T0)
    vtn = receiver(ven, schema, clock, schemas.ReplayGuard(window=timedelta(seconds=10)))
    wire = sign_at(ven, schema, clock)
    assert vtn.decode(wire).signature is schemas.SignatureState.VERIFIED
    clock.now += timedelta(seconds=1)
    with pytest.raises(schemas.ReplayRefused, match=r"nonce '[0-9a-f]{32}' was already used") as e:
        vtn.decode(wire)
    assert e.value.response_code == 459


def test_stale_message_names_its_age(ven: Identity, schema: schemas.SchemaSet) -> None:
    sender_clock, receiver_clock = Clock(T0), Clock(T0 + timedelta(seconds=30))
    vtn = receiver(ven, schema, receiver_clock, schemas.ReplayGuard(window=timedelta(seconds=10)))
    with pytest.raises(schemas.ReplayRefused, match=r"is 30 s old, older than the 10 s window"):
        vtn.decode(sign_at(ven, schema, sender_clock))


def test_future_message_names_how_far(ven: Identity, schema: schemas.SchemaSet) -> None:
    sender_clock, receiver_clock = Clock(T0 + timedelta(hours=1)), Clock(T0)
    guard = schemas.ReplayGuard(window=timedelta(seconds=10), max_future=timedelta(seconds=5))
    vtn = receiver(ven, schema, receiver_clock, guard)
    with pytest.raises(schemas.ReplayRefused, match=r"3600 s in the future, beyond the 5 s bound"):
        vtn.decode(sign_at(ven, schema, sender_clock))


def test_skew_inside_the_bounds_is_accepted(ven: Identity, schema: schemas.SchemaSet) -> None:
    guard = schemas.ReplayGuard(window=timedelta(seconds=10), max_future=timedelta(seconds=5))
    vtn = receiver(ven, schema, Clock(T0 + timedelta(seconds=10)), guard)
    assert vtn.decode(sign_at(ven, schema, Clock(T0))).signature is schemas.SignatureState.VERIFIED
    vtn = receiver(ven, schema, Clock(T0 - timedelta(seconds=5)), guard)
    assert vtn.decode(sign_at(ven, schema, Clock(T0))).signature is schemas.SignatureState.VERIFIED


def test_workers_sharing_a_store_refuse_each_others_nonces(
    ven: Identity, schema: schemas.SchemaSet
) -> None:
    clock, store = Clock(T0), schemas.MemoryNonceStore()
    first = receiver(ven, schema, clock, schemas.ReplayGuard(store=store))
    second = receiver(ven, schema, clock, schemas.ReplayGuard(store=store))
    wire = sign_at(ven, schema, clock)
    first.decode(wire)
    with pytest.raises(schemas.ReplayRefused, match=r"already used"):
        second.decode(wire)


def test_forgery_does_not_burn_the_nonce(ven: Identity, schema: schemas.SchemaSet) -> None:
    """The nonce is recorded only after the signature verified."""
    clock = Clock(T0)
    vtn = receiver(ven, schema, clock, schemas.ReplayGuard())
    wire = sign_at(ven, schema, clock)
    with pytest.raises(schemas.SignatureInvalid, match=r"digest mismatch"):
        vtn.decode(wire.replace(b">000123<", b">000666<"))
    assert vtn.decode(wire).signature is schemas.SignatureState.VERIFIED


def test_memory_store_forgets_nonces_after_the_window() -> None:
    store = schemas.MemoryNonceStore()
    guard = schemas.ReplayGuard(window=timedelta(seconds=10), store=store)
    for i in range(5):
        guard.check(nonce=f"n{i}", timestamp=T0, now=T0)
    assert len(store) == 5
    later = T0 + timedelta(seconds=20)
    guard.check(nonce="late", timestamp=later, now=later)
    assert len(store) == 1  # the five old ones could no longer pass the age check anyway
    with pytest.raises(schemas.ReplayRefused, match=r"already used"):
        guard.check(nonce="late", timestamp=later, now=later)


def test_guard_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError, match=r"window must be positive"):
        schemas.ReplayGuard(window=timedelta(0))
