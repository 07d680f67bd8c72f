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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from schemas import (
    Codec,
    IntakeLimits,
    ReplayGuard,
    ReplayRefused,
    SignatureInvalid,
    Signer,
    Verification,
    Verifier,
)
from vtn.storage import Storage
from vtn.transport import Peer

__all__ = ["NonceCheck", "SignatureSettings", "signing_codec"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureSettings:
    """What the VTN asks of payload signatures (all off by default).

    ``trusted``: PEM files of certificates or CAs whose signatures verify; empty = signatures are
    not verified (a signed payload is accepted as ``UNVERIFIED``). ``require``: refuse unsigned
    payloads (needs ``trusted``). ``sign_replies``: sign every outgoing payload with the VTN's
    TLS certificate and key. ``bind_to_peer``: the signer must be the TLS client's certificate.
    """

    trusted: tuple[Path, ...] = ()
    require: bool = False
    sign_replies: bool = False
    bind_to_peer: bool = True
    replay_window: timedelta = timedelta(minutes=5)
    replay_max_future: timedelta = timedelta(seconds=30)

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
                  clock: Callable[[], datetime], limits: IntakeLimits | None = None) -> Codec:
    """The VTN's wire codec for ``settings`` (a plain codec when everything is off)."""
    if settings.require and not settings.verifies:
        raise ValueError("requiring signatures needs trusted certificates to verify them with")
    signer = None
    if settings.sign_replies:
        if cert is None or key is None:
            raise ValueError("signing replies needs the VTN's tls_cert and tls_key")
        signer = Signer.from_files(key, cert)
    verifier = Verifier.from_files(*settings.trusted) if settings.verifies else None
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
