"""XML signatures and ReplayProtect on the VTN, with the nonce memory in the VTN's database.

OpenADR 2.0b profile, section 10 (security): a payload may be signed (enveloped ds:Signature) and
carry dsp:ReplayProtect (timestamp + nonce). With :class:`SignatureSettings` a VTN can require
signed payloads, believe only signers its trusted PEM files name (pinned certificates or CAs), and
sign every reply with its own TLS key.

How the checks split, and why:
- The codec (synchronous) verifies the signature, then the timestamp: older than ``replay_window``
  or further ahead than ``replay_max_future`` is refused there, with the skew in seconds named.
  Its nonce store is a pass-through (:class:`_NoNonceMemory`): the codec cannot await a database.
- :class:`NonceCheck` (awaited by the transport after decoding, before any handler runs) binds the
  signer to the TLS peer and records the nonce with one atomic INSERT in ``storage.nonces``; a nonce
  already there is a replay. The database is the single memory, so it survives restarts and is
  shared by every VTN worker on one database.

Distinct refusals (all OpenADR 459 with a description saying which): unsigned when required,
tampered (digest or signature value), untrusted or expired signer, signer not the TLS client,
timestamp too old, timestamp in the future, nonce already used.

What a signature may cost (:class:`SignedIntake`): the checks themselves run cheapest first with
bounded work before any digest (:mod:`schemas._dsig`); a body of ``offload_bytes`` or more is
verified on a worker thread, one per VEN (a second one meanwhile: HTTP 429) and at most
``offload_slots`` at a time (one more meanwhile: HTTP 503), both with Retry-After: 1, so the event
loop keeps serving other VENs and no body waits in memory; and a VEN whose signatures failed
``failures_allowed`` times within ``failure_period`` is answered HTTP 429 + Retry-After before its
body is read until the oldest of those failures ages out, without touching any other VEN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware
from lxml import etree

from schemas import (
    Codec,
    IntakeLimits,
    Message,
    NotRegistered,
    ReplayGuard,
    ReplayRefused,
    SignatureInvalid,
    SignatureState,
    Signer,
    Verification,
    Verifier,
)
from schemas.certpath import Purpose
from vtn.revocation import CrlFile
from vtn.storage import Storage
from vtn.transport import Peer, PeerIdentity

__all__ = ["NonceCheck", "SignatureSettings", "SignedIntake", "signing_codec"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureSettings:
    """What the VTN asks of payload signatures (all off by default).

    ``trusted``: PEM files of certificates or CAs whose signatures verify; empty = signatures are
    not verified (a signed payload is accepted as ``UNVERIFIED``). ``require``: refuse unsigned
    payloads (needs ``trusted``). ``sign_replies``: sign every outgoing payload with the VTN's
    TLS certificate and key. ``bind_to_peer``: the signer must be the TLS client's certificate.
    ``failures_allowed``, ``failure_period``, ``offload_bytes``, ``offload_slots``: what a
    signature may cost (:class:`SignedIntake`).
    """

    trusted: tuple[Path, ...] = ()
    require: bool = False
    sign_replies: bool = False
    bind_to_peer: bool = True
    replay_window: timedelta = timedelta(minutes=5)
    replay_max_future: timedelta = timedelta(seconds=30)
    # not in the TOML yet
    failures_allowed: int = 5
    failure_period: timedelta = timedelta(minutes=1)
    offload_bytes: int = 64 * 1024
    offload_slots: int = 2

    @property
    def verifies(self) -> bool:
        return bool(self.trusted)


class _NoNonceMemory:
    """The codec's NonceStore: remembers nothing; :class:`NonceCheck` asks the database."""

    def seen(self, nonce: str, timestamp: datetime) -> bool:
        return False

    def purge(self, older_than: datetime) -> None:
        return None


def signing_codec(settings: SignatureSettings, *, cert: Path | None, key: Path | None,
                  clock: Callable[[], datetime], crl: Path | None = None,
                  limits: IntakeLimits | None = None) -> Codec:
    """The VTN's wire codec for ``settings`` (a plain codec when everything is off); signers are
    checked as the VTN's TLS checks its clients, against the CRL file ``crl`` too; ``limits``
    bound what the codec takes in (identifier lengths)."""
    if settings.require and not settings.verifies:
        raise ValueError("requiring signatures needs trusted certificates to verify them with")
    signer = None
    if settings.sign_replies:
        if cert is None or key is None:
            raise ValueError("signing replies needs the VTN's tls_cert and tls_key")
        signer = Signer.from_files(key, cert)
    verifier = (Verifier.from_files(*settings.trusted, purpose=Purpose.CLIENT,
                                    crls=CrlFile(crl) if crl is not None else None)
                if settings.verifies else None)
    replay = ReplayGuard(window=settings.replay_window, max_future=settings.replay_max_future,
                         store=_NoNonceMemory()) if verifier is not None else None
    return Codec(signer=signer, verifier=verifier, replay=replay, clock=clock,
                 require_signature=settings.require, limits=limits)


class NonceCheck:
    """Awaited for every payload whose signature verified: signer binding, then durable nonce."""

    __slots__ = ("_clock", "_last_purge", "_settings", "_storage")

    def __init__(self, settings: SignatureSettings, storage: Callable[[], Storage],
                 clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._storage = storage
        self._clock = clock
        self._last_purge: datetime | None = None

    async def __call__(self, peer: Peer, verification: Verification) -> None:
        if self._settings.bind_to_peer:
            signer = verification.signer_fingerprint
            if signer.upper() != peer.fingerprint.upper():
                raise SignatureInvalid(
                    f"signed by certificate {signer}, but the TLS client is {peer.fingerprint}")
        storage = self._storage()
        await self._purge(storage)
        if await storage.nonces.seen(verification.nonce, verification.timestamp):
            raise ReplayRefused(
                f"ReplayProtect nonce {verification.nonce!r} was already used (recorded by this "
                "VTN): the message is a replay")

    async def _purge(self, storage: Storage) -> None:
        # A nonce older than the window fails the timestamp check anyway; forgetting it is safe.
        now = self._clock()
        window = self._settings.replay_window
        if self._last_purge is None or now - self._last_purge >= window:
            self._last_purge = now
            await storage.nonces.purge(now - window)


class SignedIntake:
    """The VTN's decode when it verifies signatures: the budget described in the module docstring.

    :meth:`decode` is the transport's decode step; :meth:`middleware` refuses a VEN over its
    failure budget before its body is read. The failure table holds at most ``max_tracked`` VENs
    (oldest forgotten first), each with at most ``failures_allowed`` timestamps.
    """

    __slots__ = ("_busy", "_charge", "_clock", "_codec", "_failures", "_settings", "max_tracked")

    def __init__(self, codec: Codec, settings: SignatureSettings,
                 clock: Callable[[], datetime], *, max_tracked: int = 100_000,
                 charge_cpu: Callable[[str, float], None] | None = None) -> None:
        self._codec = codec
        self._settings = settings
        self._clock = clock
        # told the CPU seconds each VEN's document cost, on the loop or on a worker thread
        # (vtn.limits.VenBudgets.charge_cpu), as the transport's plain decode does
        self._charge = charge_cpu or (lambda _fingerprint, _seconds: None)
        self._failures: dict[str, deque[datetime]] = {}
        self._busy: set[str] = set()  # VENs with a verification on a worker thread
        self.max_tracked = max_tracked

    def retry_after(self, fingerprint: str) -> int:
        """Whole seconds until this VEN may send again (0: now)."""
        failures = self._failures.get(fingerprint)
        if failures is None:
            return 0
        now = self._clock()
        while failures and now - failures[0] >= self._settings.failure_period:
            failures.popleft()
        if not failures:
            del self._failures[fingerprint]
            return 0
        if len(failures) < self._settings.failures_allowed:
            return 0
        return max(1, math.ceil((failures[0] + self._settings.failure_period - now)
                                .total_seconds()))

    def _failed(self, fingerprint: str) -> None:
        failures = self._failures.pop(fingerprint, None)  # re-inserted: newest last
        if failures is None:
            failures = deque(maxlen=self._settings.failures_allowed)
            while len(self._failures) >= self.max_tracked:
                del self._failures[next(iter(self._failures))]
        failures.append(self._clock())
        self._failures[fingerprint] = failures

    async def decode(self, peer: Peer, body: bytes) -> tuple[Message, Verification | None]:
        with self._charged(peer.fingerprint):
            root = self._codec.parse(body)
        try:
            if len(body) < self._settings.offload_bytes:
                with self._charged(peer.fingerprint):
                    checked = self._codec.check_signature(root)
            else:
                checked = await self._off_loop(peer.fingerprint, root)
        except SignatureInvalid:
            self._failed(peer.fingerprint)
            raise
        with self._charged(peer.fingerprint):
            return self._codec.typed(root, checked)

    @contextlib.contextmanager
    def _charged(self, fingerprint: str) -> Iterator[None]:
        """Charge the VEN the CPU this thread spends in the block (no await inside it)."""
        started = time.thread_time()
        try:
            yield
        finally:
            self._charge(fingerprint, time.thread_time() - started)

    async def _off_loop(self, fingerprint: str,
                        root: etree._Element) -> tuple[SignatureState, Verification | None]:
        # Refused, not queued: a queue would hold every waiting body in memory.
        if fingerprint in self._busy:
            raise web.HTTPTooManyRequests(
                text="a signed payload of this VEN is still being verified; retry later",
                headers={"Retry-After": "1"})
        if len(self._busy) >= self._settings.offload_slots:
            raise web.HTTPServiceUnavailable(
                text="the VTN is verifying as many signatures as it may; retry later",
                headers={"Retry-After": "1"})
        self._busy.add(fingerprint)
        spent = [0.0]  # the worker thread's CPU, charged on the loop once it is done

        def check() -> tuple[SignatureState, Verification | None]:
            started = time.thread_time()
            try:
                return self._codec.check_signature(root)
            finally:
                spent[0] = time.thread_time() - started

        def done(_: object) -> None:
            self._busy.discard(fingerprint)
            self._charge(fingerprint, spent[0])

        work = asyncio.get_running_loop().run_in_executor(None, check)
        # Until the thread is done, even when the request is cancelled while it runs.
        work.add_done_callback(done)
        return await work

    def middleware(self, identify: PeerIdentity) -> Middleware:
        @web.middleware
        async def signature_budget(request: web.Request,
                                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                                   ) -> web.StreamResponse:
            try:
                fingerprint = identify(request).fingerprint
            except NotRegistered:
                return await handler(request)  # the transport refuses it
            wait = self.retry_after(fingerprint)
            if wait:
                log.info("VEN %s refused for %d s: too many failed signatures", fingerprint, wait)
                raise web.HTTPTooManyRequests(
                    text="too many payloads with failing signatures from this VEN; retry later",
                    headers={"Retry-After": str(wait)})
            return await handler(request)

        return signature_budget
