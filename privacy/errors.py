"""The privacy package's errors. Every refusal here is *local*: we stopped ourselves from doing
harm. The tree is drawn in the :mod:`privacy` package docstring.

None of these ever becomes a reply to a peer: they stop an action before anything is sent.
"""

from __future__ import annotations

from schemas import CrowdflexError

__all__ = [
    "ConsentMissing",
    "KeyUnavailable",
    "NoMandate",
    "OutboundRefused",
    "PrivacyConfigError",
    "PrivacyError",
    "UnknownIdentity",
    "VaultCorrupt",
    "VaultOutdated",
]


class PrivacyError(CrowdflexError):
    """Root of the privacy package's errors."""


class KeyUnavailable(PrivacyError):
    """The master key (or the requested version of it) cannot be loaded."""


class VaultCorrupt(PrivacyError):
    """A vault record does not decrypt: wrong key, or the file was altered."""


class VaultOutdated(PrivacyError):
    """The vault file predates the current format; it is refused rather than read."""


class UnknownIdentity(PrivacyError):
    """The prosumer or device is not in the vault (never added, or erased)."""


class ConsentMissing(PrivacyError):
    """No live consent record covers this device and purpose."""


class NoMandate(PrivacyError):
    """The pseudonymisation entity answers only for EANs the asking aggregator has a mandate for."""


class PrivacyConfigError(PrivacyError):
    """The privacy configuration is incomplete or out of range."""


class OutboundRefused(PrivacyError):
    """An outbound message carries something minimisation forbids; nothing was sent.

    ``findings`` names each problem (what was found and where), never the full offending value, so
    the log line does not itself become a leak.
    """

    def __init__(self, findings: tuple[str, ...]) -> None:
        super().__init__("outbound message refused: " + "; ".join(findings))
        self.findings = findings
