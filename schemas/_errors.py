"""The crowdflex error tree: every failure the message layer can raise.

::

    CrowdflexError
    +-- CertificateRefused        a certificate fails the path check (schemas.certpath)
    +-- ManifestError             the conformance corpus manifest is malformed
    |                             (schemas.conformance)
    +-- LocalProtocolError        we built something illegal: a bug on our side, never sent
    +-- RemoteProtocolError       the peer broke the protocol; carries its OpenADR response code
        +-- OutOfSequence          450
        +-- NotAllowed             451
        +-- InvalidId              452
        +-- NotRecognized          453
        |   +-- UnknownPayload        a well-formed document that is no 2.0b payload
        +-- InvalidData            454
        |   +-- HostileDocument       DOCTYPE/entity declarations, over-size, over-depth
        |   +-- MalformedXml          not well-formed, not UTF-8, truncated
        |   +-- SchemaViolation       well-formed but not valid against the 2.0b XSD
        +-- ComplianceError        459
        |   +-- SignatureInvalid      the signature does not verify, or is missing where required
        |   +-- ReplayRefused         nonce seen before, timestamp too old or too far in the future
        +-- SignalNotSupported     460
        +-- ReportNotSupported     461
        +-- TargetMismatch         462
        +-- NotRegistered          463
        +-- OtherError             469

Foreign exceptions (lxml, cryptography) are translated into this tree once, at the codec boundary.
Response codes: OpenADR 2.0 Profile Specification B, section 7 (error codes 450..469).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CertificateRefused",
    "ComplianceError",
    "CrowdflexError",
    "HostileDocument",
    "InvalidData",
    "InvalidId",
    "LocalProtocolError",
    "MalformedXml",
    "NotAllowed",
    "NotRecognized",
    "NotRegistered",
    "OtherError",
    "OutOfSequence",
    "RemoteProtocolError",
    "ReplayRefused",
    "ReportNotSupported",
    "SchemaViolation",
    "SignalNotSupported",
    "SignatureInvalid",
    "TargetMismatch",
    "UnknownPayload",
]


class CrowdflexError(Exception):
    """Root of every error crowdflex raises on purpose."""


class CertificateRefused(CrowdflexError):
    """A certificate does not pass :class:`schemas.certpath.PathCheck`; the reason says which
    rule failed. Where it arrived in a payload, the caller answers with its own protocol error."""


class LocalProtocolError(CrowdflexError):
    """We tried to build or send something the protocol forbids: a bug on our side."""


class RemoteProtocolError(CrowdflexError):
    """The peer sent something the protocol forbids; answer it with ``response_code``.

    ``request_id``: the refused payload's requestID where it was read before the refusal (an
    unsigned payload refused for want of a signature), for the answer to echo; else "".
    """

    response_code: ClassVar[int] = 469

    def __init__(self, reason: str, *, request_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.response_code} {type(self).__name__}: {self.reason}"


class OutOfSequence(RemoteProtocolError):
    response_code = 450


class NotAllowed(RemoteProtocolError):
    response_code = 451


class InvalidId(RemoteProtocolError):
    response_code = 452


class NotRecognized(RemoteProtocolError):
    response_code = 453


class UnknownPayload(NotRecognized):
    """Well-formed and schema-valid XML, but not a payload this node handles."""


class InvalidData(RemoteProtocolError):
    response_code = 454


class HostileDocument(InvalidData):
    """Refused before the XML parser saw it: DOCTYPE/entities, too large, too deep."""


class MalformedXml(InvalidData):
    """Not well-formed XML, not UTF-8, or truncated."""


class SchemaViolation(InvalidData):
    """Well-formed, but not valid against the normative OpenADR 2.0b XSD."""


class ComplianceError(RemoteProtocolError):
    response_code = 459


class SignatureInvalid(ComplianceError):
    """The XML signature is missing where required, malformed, or does not verify."""


class ReplayRefused(ComplianceError):
    """ReplayProtect refused the message: nonce reused, or timestamp outside the window."""


class SignalNotSupported(RemoteProtocolError):
    response_code = 460


class ReportNotSupported(RemoteProtocolError):
    response_code = 461


class TargetMismatch(RemoteProtocolError):
    response_code = 462


class NotRegistered(RemoteProtocolError):
    response_code = 463


class OtherError(RemoteProtocolError):
    response_code = 469
