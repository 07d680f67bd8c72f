"""crowdflex privacy by design (DESIGN.md section 5): pseudonyms, identity vault, minimisation,
retention and erasure, and the privacy audit.

>>> from uuid import UUID
>>> pseudonym(bytes(range(32)), UUID("00000000-0000-4000-8000-000000000001"),
...           bytes.fromhex("00112233445566778899aabbccddeeff"),
...           "TSO:TENNET-NL", "balancing-validation", "2025-03")
'psn1_cobchadehz3eactgxpsmrs3pke'

Pure functions and small synchronous stores; imports only ``schemas`` (for the error root).
"""

from __future__ import annotations

from .allowlist import GENERALISED
from .audit import CAPTURE_SUBDIR, AuditResult, audit_run
from .config import (
    DEFAULT_LEGAL_BASIS,
    VALIDATION_PURPOSE,
    PrivacyConfig,
    Recipient,
    load_config,
)
from .detect import Finding, LeakDetector
from .erasure import ErasureNotice, erase_prosumer, write_notices
from .errors import (
    ConsentMissing,
    KeyUnavailable,
    OutboundRefused,
    PrivacyConfigError,
    PrivacyError,
    UnknownIdentity,
    VaultCorrupt,
)
from .keys import DEFAULT_KEY_ENV, EnvKeyProvider, FileKeyProvider, KeyProvider, MasterKey
from .minimise import (
    ActivationWindow,
    OutboundFilter,
    OutboundPolicy,
    device_share,
    generalise,
)
from .pseudonym import is_pseudonym, month_of, pseudonym, validate_month
from .records import Consent, Device, Prosumer
from .report import data_flows, render_html, render_markdown, write_report
from .retention import (
    DEFAULT_RETENTION,
    RawDataStore,
    RawSample,
    SqliteRawDataStore,
    apply_retention,
)
from .vault import GCP_PURPOSE, ONBOARDING_PURPOSE, AuditEntry, IdentityValue, IdentityVault

__all__ = [
    "CAPTURE_SUBDIR",
    "DEFAULT_KEY_ENV",
    "DEFAULT_LEGAL_BASIS",
    "DEFAULT_RETENTION",
    "GCP_PURPOSE",
    "GENERALISED",
    "ONBOARDING_PURPOSE",
    "VALIDATION_PURPOSE",
    "ActivationWindow",
    "AuditEntry",
    "AuditResult",
    "Consent",
    "ConsentMissing",
    "Device",
    "EnvKeyProvider",
    "ErasureNotice",
    "FileKeyProvider",
    "Finding",
    "IdentityValue",
    "IdentityVault",
    "KeyProvider",
    "KeyUnavailable",
    "LeakDetector",
    "MasterKey",
    "OutboundFilter",
    "OutboundPolicy",
    "OutboundRefused",
    "PrivacyConfig",
    "PrivacyConfigError",
    "PrivacyError",
    "Prosumer",
    "RawDataStore",
    "RawSample",
    "Recipient",
    "SqliteRawDataStore",
    "UnknownIdentity",
    "VaultCorrupt",
    "apply_retention",
    "audit_run",
    "data_flows",
    "device_share",
    "erase_prosumer",
    "generalise",
    "is_pseudonym",
    "load_config",
    "month_of",
    "pseudonym",
    "render_html",
    "render_markdown",
    "validate_month",
    "write_notices",
    "write_report",
]
