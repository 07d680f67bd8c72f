"""crowdflex privacy by design (docs/architecture.md#privacy-design): pseudonyms, identity vault,
minimisation, retention and erasure, and the privacy audit.

>>> from uuid import UUID
>>> pseudonym(bytes(range(32)), UUID("00000000-0000-4000-8000-000000000001"),
...           bytes.fromhex("00112233445566778899aabbccddeeff"),
...           "TSO:TENNET-NL", "balancing-validation", "2025-03")
'psn1_cobchadehz3eactgxpsmrs3pke'

Pure functions and small synchronous stores; imports only ``schemas`` (for the error root).
Its errors (privacy.errors), every one *local*: we stopped ourselves from doing harm::

    CrowdflexError (schemas)
    +-- PrivacyError
        +-- KeyUnavailable       no master key, a malformed key file, an unknown key version
        +-- VaultCorrupt         a vault record fails authenticated decryption (tampered, wrong key)
        +-- VaultOutdated        a vault file of an older format, refused (not read half-safely)
        +-- UnknownIdentity      no such prosumer or device in the vault (or it was erased)
        +-- ConsentMissing       no live consent for this purpose: do not onboard, do not send
        +-- NoMandate            the pseudonymisation entity refuses an EAN the asker holds no
                                 mandate for
        +-- OutboundRefused      the minimisation filter found something that must not leave
        +-- PrivacyConfigError   a configuration value is missing or out of range
"""

from __future__ import annotations

from .access import SubjectAccess, subject_access
from .allowlist import GENERALISED
from .audit import CAPTURE_SUBDIR, AuditResult, audit_run
from .auditlog import AuditEntry, AuditTrail, ChainCheck
from .config import (
    DEFAULT_LEGAL_BASIS,
    VALIDATION_PURPOSE,
    PrivacyConfig,
    Recipient,
    config_from_table,
    load_config,
)
from .detect import Finding, LeakDetector
from .devices import ONBOARDING_PURPOSE
from .dpia import MeteringScope, Section, Table, data_flows, dpia_sections
from .dpia_render import render_html, render_markdown, write_dpia
from .erasure import erase_prosumer
from .errors import (
    ConsentMissing,
    KeyUnavailable,
    NoMandate,
    OutboundRefused,
    PrivacyConfigError,
    PrivacyError,
    UnknownIdentity,
    VaultCorrupt,
    VaultOutdated,
)
from .gcp import GcpPseudonyms, PseudonymisationEntity
from .keys import DEFAULT_KEY_ENV, EnvKeyProvider, FileKeyProvider, KeyProvider, MasterKey
from .minimise import (
    DEVICE_SHARE_STEP,
    ActivationWindow,
    OutboundFilter,
    OutboundPolicy,
    device_share,
    generalise,
)
from .pseudonym import PSEUDONYM_PREFIX, is_pseudonym, month_of, pseudonym, validate_month
from .pseudonyms import GCP_PURPOSE
from .records import (
    Consent,
    ConsentHistory,
    Device,
    ErasureNotice,
    Holdings,
    PendingErasure,
    Prosumer,
)
from .retention import (
    DEFAULT_RETENTION,
    RawDataStore,
    RawSample,
    SqliteRawDataStore,
    apply_retention,
)
from .stores import Holder, Store, StoreRetention, retention_schedule
from .vault import IdentityValue, IdentityVault

__all__ = [
    "CAPTURE_SUBDIR",
    "DEFAULT_KEY_ENV",
    "DEFAULT_LEGAL_BASIS",
    "DEFAULT_RETENTION",
    "DEVICE_SHARE_STEP",
    "GCP_PURPOSE",
    "GENERALISED",
    "ONBOARDING_PURPOSE",
    "PSEUDONYM_PREFIX",
    "VALIDATION_PURPOSE",
    "ActivationWindow",
    "AuditEntry",
    "AuditResult",
    "AuditTrail",
    "ChainCheck",
    "Consent",
    "ConsentHistory",
    "ConsentMissing",
    "Device",
    "EnvKeyProvider",
    "ErasureNotice",
    "FileKeyProvider",
    "Finding",
    "GcpPseudonyms",
    "Holder",
    "Holdings",
    "IdentityValue",
    "IdentityVault",
    "KeyProvider",
    "KeyUnavailable",
    "LeakDetector",
    "MasterKey",
    "MeteringScope",
    "NoMandate",
    "OutboundFilter",
    "OutboundPolicy",
    "OutboundRefused",
    "PendingErasure",
    "PrivacyConfig",
    "PrivacyConfigError",
    "PrivacyError",
    "Prosumer",
    "PseudonymisationEntity",
    "RawDataStore",
    "RawSample",
    "Recipient",
    "Section",
    "SqliteRawDataStore",
    "Store",
    "StoreRetention",
    "SubjectAccess",
    "Table",
    "UnknownIdentity",
    "VaultCorrupt",
    "VaultOutdated",
    "apply_retention",
    "audit_run",
    "config_from_table",
    "data_flows",
    "device_share",
    "dpia_sections",
    "erase_prosumer",
    "generalise",
    "is_pseudonym",
    "load_config",
    "month_of",
    "pseudonym",
    "render_html",
    "render_markdown",
    "retention_schedule",
    "subject_access",
    "validate_month",
    "write_dpia",
]
