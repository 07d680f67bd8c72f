"""The codec: bytes <-> typed messages, with every check in one place and in a fixed order.

decode: size/DOCTYPE/encoding refusal -> lxml parse (no network, no entities) -> XSD validation ->
oadrPayload envelope -> signature state -> typed message. encode: typed message -> lxml builders
inside oadrPayload/oadrSignedObject -> UTF-8 bytes. lxml escapes every text, so markup inside an ID
is data on the way out, never structure.

A :class:`Codec` holds a compiled schema and a parser and is not thread-safe; give each thread its own
(asyncio code on one loop shares one freely). :func:`default_codec` is built on first use.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from lxml import etree

from ._base import Message, SignatureState
from ._errors import InvalidData, LocalProtocolError, RemoteProtocolError, UnknownPayload
from ._families import DECODERS, ENCODERS
from ._intake import Intake, IntakeLimits
from ._wire import DS, NSMAP, OADR, q
from ._xsd import SchemaSet

__all__ = ["Codec", "default_codec"]

_PAYLOAD = q(OADR, "oadrPayload")
_SIGNED_OBJECT = q(OADR, "oadrSignedObject")
_SIGNATURE = q(DS, "Signature")


class Codec:
    """Decodes and encodes OpenADR 2.0b payloads with explicit settings."""

    def __init__(
        self,
        *,
        schema: SchemaSet | None = None,
        limits: IntakeLimits | None = None,
        validate_output: bool = False,
    ) -> None:
        self.schema = schema or SchemaSet()
        self._intake = Intake(limits)
        self.validate_output = validate_output

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
        payload = root.find(_SIGNED_OBJECT)[0]  # type: ignore[index]
        decoder = DECODERS.get(payload.tag)
        if decoder is None:
            raise UnknownPayload(f"no decoder for <{etree.QName(payload).localname}>")
        try:
            message = decoder(payload)
        except RemoteProtocolError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidData(f"<{etree.QName(payload).localname}>: {exc}") from None
        state = self._signature_state(root)
        return message if state is SignatureState.ABSENT else replace(message, signature=state)

    def _signature_state(self, root: etree._Element) -> SignatureState:
        if root.find(_SIGNATURE) is None:
            return SignatureState.ABSENT
        return SignatureState.UNVERIFIED

    # ------------------------------------------------------------ encode

    def build(self, message: Message) -> etree._Element:
        """The oadrPayload tree for ``message`` (unsigned)."""
        encoder = ENCODERS.get(type(message))
        if encoder is None:
            raise LocalProtocolError(f"{type(message).__name__} is not an OpenADR 2.0b payload")
        root = etree.Element(_PAYLOAD, nsmap=NSMAP)
        encoder(etree.SubElement(root, _SIGNED_OBJECT), message)
        return root

    def encode(self, message: Message) -> bytes:
        """Typed message -> UTF-8 bytes of an XSD-valid oadrPayload."""
        root = self.build(message)
        if self.validate_output and not self.schema.is_valid(root):
            raise LocalProtocolError(
                f"encoded {type(message).__name__} is not XSD-valid: {self.schema_errors(root)}"
            )
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
