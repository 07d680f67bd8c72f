"""Erasure (GDPR art. 17) by crypto-shredding, and the notices recipients get.

Order matters: the live pseudonyms are computed *first* (they need the salts), then the vault
deletes identity and salts, then raw samples go. After that nobody can recompute any pseudonym the
prosumer's devices ever had, so whatever a recipient still holds is anonymous to the aggregator too.

One notice per recipient: a combined list would let recipients link their pseudonyms to each
other's. A notice names pseudonyms only, never the prosumer or a device_uuid.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .config import PrivacyConfig
from .pseudonym import month_of
from .retention import RawDataStore
from .vault import IdentityVault

__all__ = ["ErasureNotice", "erase_prosumer", "write_notices"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureNotice:
    notice_id: str
    recipient: str
    month: str
    issued_at: datetime
    #: purpose -> pseudonyms the recipient must delete
    pseudonyms: tuple[tuple[str, tuple[str, ...]], ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "notice": "erasure request, GDPR art. 17 and art. 19",
                "notice_id": self.notice_id,
                "recipient": self.recipient,
                "month": self.month,
                "issued_at": self.issued_at.isoformat(),
                "delete": [{"purpose": p, "pseudonyms": list(ps)} for p, ps in self.pseudonyms],
            },
            indent=2,
        )


def erase_prosumer(
    vault: IdentityVault,
    prosumer_id: str,
    config: PrivacyConfig,
    *,
    now: datetime,
    requested_by: str,
    raw_store: RawDataStore | None = None,
) -> tuple[ErasureNotice, ...]:
    """Erase a prosumer; returns one notice per configured recipient (current month)."""
    month = month_of(now, config.month_timezone)
    devices = tuple(vault.devices(prosumer_id))
    vault.prosumer(prosumer_id)  # unknown prosumer: raise before anything is computed
    notices = []
    for recipient in config.recipients:
        per_purpose = tuple(
            (
                purpose,
                tuple(
                    dict.fromkeys(
                        vault.pseudonym_of(d.device_uuid, recipient.name, purpose, month)
                        for d in devices
                    )
                ),
            )
            for purpose in recipient.purposes
        )
        notices.append(
            ErasureNotice(
                # hyphenated: its digit runs are too short to read as an EAN
                notice_id=str(uuid.uuid4()),
                recipient=recipient.name,
                month=month,
                issued_at=now,
                pseudonyms=per_purpose,
            )
        )
    vault.erase_prosumer(prosumer_id, requested_by=requested_by)
    if raw_store is not None:
        raw_store.erase_devices(d.device_uuid for d in devices)
    return tuple(notices)


def write_notices(notices: tuple[ErasureNotice, ...], directory: Path) -> tuple[Path, ...]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for notice in notices:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in notice.recipient)
        path = directory / f"erasure-{safe}-{notice.notice_id}.json"
        path.write_text(notice.to_json() + "\n", encoding="utf-8")
        paths.append(path)
    return tuple(paths)
