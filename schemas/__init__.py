"""crowdflex message layer: OpenADR 2.0b payloads as typed, frozen dataclasses. Sans-I/O.

>>> from schemas import Poll, decode, encode
>>> decode(encode(Poll(ven_id="000123"))).ven_id
'000123'

:func:`decode` and :func:`encode` use one default :class:`Codec`, built on first use; build your own
``Codec(...)`` for explicit settings (schema set, limits, signing, replay protection, clock).

Every error crowdflex raises on purpose derives from :class:`CrowdflexError`, with one root per
package under it; the message layer's own tree is drawn in ``schemas._errors``, each other
package's in its own docstring::

    CrowdflexError
    +-- ConfigError               tomlconfig; also a ValueError
    +-- DevpkiError               devpki
    +-- VtnError                  vtn
    +-- VenError                  ven
    +-- PrivacyError              privacy
    +-- CbpError                  cbp
"""

from __future__ import annotations

from . import events, opt, registration, reports
from ._base import Message, SignatureState
from ._codec import Codec, default_codec, new_id, utc_now
from ._errors import (
    CertificateRefused,
    ComplianceError,
    CrowdflexError,
    HostileDocument,
    InvalidData,
    InvalidId,
    LocalProtocolError,
    MalformedXml,
    NotAllowed,
    NotRecognized,
    NotRegistered,
    OtherError,
    OutOfSequence,
    RemoteProtocolError,
    ReplayRefused,
    ReportNotSupported,
    SchemaViolation,
    SignalNotSupported,
    SignatureInvalid,
    TargetMismatch,
    UnknownPayload,
)
from ._event_cache import EventEncodeCache
from ._intake import IntakeLimits
from ._xsd import SchemaSet, bundled_schema_dir
from .events import *  # noqa: F403  (each family module lists its public names in __all__)
from .opt import *  # noqa: F403
from .parts import EiResponse, Target
from .poll import Poll, Response
from .registration import *  # noqa: F403
from .replay import MemoryNonceStore, NonceStore, ReplayGuard
from .reports import *  # noqa: F403
from .services import SERVICE_PREFIX, Service
from .signature import Signer, Verification, Verifier
from .units import ItemBase, ItemKind, PowerAttributes, SiScale


def decode(data: bytes) -> Message:
    """Parse, validate and type one OpenADR 2.0b payload with the default codec."""
    return default_codec().decode(data)


def encode(message: Message) -> bytes:
    """Encode one payload with the default codec; the result is XSD-valid."""
    return default_codec().encode(message)


__all__ = [
    "SERVICE_PREFIX",
    "CertificateRefused",
    "Codec",
    "ComplianceError",
    "CrowdflexError",
    "EiResponse",
    "EventEncodeCache",
    "HostileDocument",
    "IntakeLimits",
    "InvalidData",
    "InvalidId",
    "ItemBase",
    "ItemKind",
    "LocalProtocolError",
    "MalformedXml",
    "MemoryNonceStore",
    "Message",
    "NonceStore",
    "NotAllowed",
    "NotRecognized",
    "NotRegistered",
    "OtherError",
    "OutOfSequence",
    "Poll",
    "PowerAttributes",
    "RemoteProtocolError",
    "ReplayGuard",
    "ReplayRefused",
    "ReportNotSupported",
    "Response",
    "SchemaSet",
    "SchemaViolation",
    "Service",
    "SiScale",
    "SignalNotSupported",
    "SignatureInvalid",
    "SignatureState",
    "Signer",
    "Target",
    "TargetMismatch",
    "UnknownPayload",
    "Verification",
    "Verifier",
    "bundled_schema_dir",
    "decode",
    "default_codec",
    "encode",
    "new_id",
    "utc_now",
]
__all__ += registration.__all__ + events.__all__ + reports.__all__ + opt.__all__
