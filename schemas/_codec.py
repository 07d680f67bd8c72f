"""The codec: bytes <-> typed messages, with every check in one place and in a fixed order.

decode: size/DOCTYPE/encoding refusal -> lxml parse (no network, no entities) -> XSD validation ->
oadrPayload envelope -> signature and ReplayProtect -> typed message. The signature is checked
before the body is typed, so a tampered body is reported as tampered, not as whatever it now says.
encode: typed message -> escaped text inside oadrPayload/oadrSignedObject (:mod:`schemas._writer`)
-> UTF-8 bytes; with a signer, those bytes are parsed back and signed as a tree. Every text is
escaped, so markup inside an ID is data on the way out, never structure.

A :class:`Codec` holds a compiled schema, parsers and an :class:`EventEncodeCache` and is not
thread-safe; give each thread its own (asyncio code on one loop shares one freely).
:func:`default_codec` is built on first use.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from typing import Final

from lxml import etree

from . import _dsig
from ._base import Message, SignatureState
from ._errors import (
    InvalidData,
    LocalProtocolError,
    RemoteProtocolError,
    SignatureInvalid,
    UnknownPayload,
)
from ._event_cache import EventEncodeCache
from ._families import DECODERS, encoders
from ._intake import Intake, IntakeLimits
from ._wire import OADR, q
from ._writer import SIGNED_OBJECT, Node, document
from ._xsd import SchemaSet
from .parts import echoed_request_id
from .replay import ReplayGuard
from .signature import Signer, Verification, Verifier

__all__ = ["Codec", "default_codec"]

_PAYLOAD = q(OADR, "oadrPayload")


def utc_now() -> datetime:
    """The default clock of every crowdflex node: aware UTC now (tests inject their own)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh requestID, eventID or similar: a random UUID in its hyphenated form.

    Its digit runs are at most 12 long, so no ID can read as an 18-digit meter number (EAN),
    which the aggregator's privacy filter would rightly refuse to let out (unhyphenated random
    hex does, about once in a few thousand IDs).
    """
    return str(uuid.uuid4())


class Codec:
    """Decodes and encodes OpenADR 2.0b payloads with explicit settings.

    Signing: with a ``signer``, :meth:`encode` signs every payload (fresh random nonce, timestamp
    from ``clock``). Verifying: with a ``verifier``, a signed payload must verify and pass
    ``replay`` (a per-codec :class:`ReplayGuard` with default bounds when not given), and decodes as
    ``SignatureState.VERIFIED``; without one it decodes as ``UNVERIFIED``. ``require_signature``
    refuses unsigned payloads. ``clock`` returns the aware UTC now; tests drive it.
    ``event_cache`` (a fresh one when not given) remembers the oadrEvents this codec built and the
    event variants it was asked for, so a fan-out that sends one Event object to many VENs builds
    it once.
    """

    def __init__(
        self,
        *,
        schema: SchemaSet | None = None,
        limits: IntakeLimits | None = None,
        validate_output: bool = False,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        replay: ReplayGuard | None = None,
        clock: Callable[[], datetime] = utc_now,
        require_signature: bool = False,
        event_cache: EventEncodeCache | None = None,
    ) -> None:
        self.schema = schema or SchemaSet()
        self._intake = Intake(limits)
        self.validate_output = validate_output
        self.signer = signer
        self.verifier = verifier
        self.replay = replay if replay is not None or verifier is None else ReplayGuard()
        self.clock = clock
        self.require_signature = require_signature
        self.event_cache: Final = event_cache or EventEncodeCache()
        self._encoders = encoders(self.event_cache)
        # our own output, read back for signing or checking: no DTD, entities or network, and
        # none of the size limits meant for peers (a text may exceed 10 MB, as it could when the
        # encoders built the tree)
        self._own_output = etree.XMLParser(resolve_entities=False, no_network=True,
                                           load_dtd=False, huge_tree=True)

    # ------------------------------------------------------------ decode

    def parse(self, data: bytes) -> etree._Element:
        """Hardened parse plus XSD validation: the checked oadrPayload tree."""
        root = self._intake.parse(data)
        self.schema.validate(root)
        if root.tag != _PAYLOAD:
            raise UnknownPayload(
                f"root element is <{etree.QName(root).localname}>, not <oadrPayload>"
            )
        return root

    def decode(self, data: bytes) -> Message:
        """Bytes received from a peer -> typed message, or a :class:`RemoteProtocolError`."""
        root = self.parse(data)
        if len(root) == 1 and not self.require_signature:
            return self._message(root)  # oadrSignedObject alone: unsigned, nothing to check
        return self.typed(root, self.check_signature(root))[0]

    def decode_signed(self, data: bytes) -> tuple[Message, Verification | None]:
        """Like :meth:`decode`, also returning who signed when the signature verified."""
        root = self.parse(data)
        return self.typed(root, self.check_signature(root))

    def typed(
        self, root: etree._Element, checked: tuple[SignatureState, Verification | None]
    ) -> tuple[Message, Verification | None]:
        """The message in a tree from :meth:`parse`, marked as :meth:`check_signature` found."""
        state, verification = checked
        message = self._message(root)
        if state is not SignatureState.ABSENT:
            message = replace(message, signature=state)
        return message, verification

    def _message(self, root: etree._Element) -> Message:
        payload = root[-1][0]  # oadrSignedObject, the XSD's last child of oadrPayload
        decoder = DECODERS.get(payload.tag)
        if decoder is None:
            raise UnknownPayload(f"no decoder for <{etree.QName(payload).localname}>")
        try:
            return decoder(payload)
        except RemoteProtocolError:
            raise
        except (ValueError, LookupError, TypeError) as exc:
            raise InvalidData(f"<{etree.QName(payload).localname}>: {exc}") from None

    def check_signature(
        self, root: etree._Element
    ) -> tuple[SignatureState, Verification | None]:
        """Signature and ReplayProtect of a tree from :meth:`parse`.

        Unlike the rest of the codec this may run on another thread (the VTN verifies large
        signed bodies off its event loop): it reads only ``root``, the thread-safe
        :class:`Verifier` and the :class:`ReplayGuard`.
        """
        signature = _dsig.find_signature(root)
        if signature is None:
            if self.require_signature:
                # no signature work was done: reading the payload for its requestID is the
                # same work as decoding any unsigned payload, and lets the refusal name it
                message, _ = self.typed(root, (SignatureState.ABSENT, None))
                raise SignatureInvalid("the payload is unsigned; this node requires signatures",
                                       request_id=echoed_request_id(message))
            return SignatureState.ABSENT, None
        if self.verifier is None:
            return SignatureState.UNVERIFIED, None
        now = self.clock()
        verification = self.verifier.verify(root, signature, now)
        if self.replay is not None:
            self.replay.check(nonce=verification.nonce, timestamp=verification.timestamp, now=now)
        return SignatureState.VERIFIED, verification

    # ------------------------------------------------------------ encode

    def build(self, message: Message) -> etree._Element:
        """The oadrPayload tree for ``message`` (unsigned): its bytes, parsed."""
        return etree.fromstring(self._write(message), self._own_output)

    def _write(self, message: Message) -> bytes:
        encoder = self._encoders.get(type(message))
        if encoder is None:
            raise LocalProtocolError(f"{type(message).__name__} is not an OpenADR 2.0b payload")
        signed_object = Node(SIGNED_OBJECT)
        encoder(signed_object, message)
        return document(signed_object)

    def encode(self, message: Message) -> bytes:
        """Typed message -> UTF-8 bytes of an XSD-valid oadrPayload."""
        data = self._write(message)
        if self.signer is None and not self.validate_output:
            return data
        root = etree.fromstring(data, self._own_output)
        if self.signer is not None:
            # 128 random bits: a collision inside one replay window is not a practical concern.
            _dsig.sign(root, self.signer, timestamp=self.clock(), nonce=secrets.token_hex(16))
        if self.validate_output and not self.schema.is_valid(root):
            raise LocalProtocolError(
                f"encoded {type(message).__name__} is not XSD-valid: {self.schema_errors(root)}"
            )
        if self.signer is None:
            return data
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def schema_errors(self, root: etree._Element) -> str:
        try:
            self.schema.validate(root)
        except RemoteProtocolError as exc:
            return exc.reason
        return ""


@cache
def default_codec() -> Codec:
    """The process-wide codec with default settings, built on first use."""
    return Codec()
