"""Pseudonyms: the reference vector of docs/architecture.md#privacy-design, unlinkability, no EAN in
them, keys from file or env."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from uuid import UUID

import pytest

import privacy
from privacy import pseudonym
from tests.kit.vaults import WHO

MASTER = bytes(range(32))
DEVICE = UUID("00000000-0000-4000-8000-000000000001")
SALT = bytes.fromhex("00112233445566778899aabbccddeeff")
TSO = "TSO:TENNET-NL"
PURPOSE = "balancing-validation"


def test_scenarios_reference_vector() -> None:
    assert pseudonym(MASTER, DEVICE, SALT, TSO, PURPOSE, "2025-03") == (
        "psn1_cobchadehz3eactgxpsmrs3pke"
    )


def test_stable_within_a_month_and_well_formed() -> None:
    first = pseudonym(MASTER, DEVICE, SALT, TSO, PURPOSE, "2025-03")
    assert first == pseudonym(MASTER, DEVICE, SALT, TSO, PURPOSE, "2025-03")
    assert privacy.is_pseudonym(first)
    assert len(first) == len("psn1_") + 26


@pytest.mark.parametrize(
    ("recipient", "purpose", "month"),
    [
        (TSO, PURPOSE, "2025-04"),
        ("TSO:AMPRION-DE", PURPOSE, "2025-03"),
        (TSO, "gcp", "2025-03"),
    ],
)
def test_unlinkable_across_month_recipient_and_purpose(
    recipient: str, purpose: str, month: str
) -> None:
    reference = pseudonym(MASTER, DEVICE, SALT, TSO, PURPOSE, "2025-03")
    assert pseudonym(MASTER, DEVICE, SALT, recipient, purpose, month) != reference


def test_other_device_salt_or_key_give_other_pseudonyms() -> None:
    reference = pseudonym(MASTER, DEVICE, SALT, TSO, PURPOSE, "2025-03")
    other_uuid = UUID("00000000-0000-4000-8000-000000000002")
    assert pseudonym(MASTER, other_uuid, SALT, TSO, PURPOSE, "2025-03") != reference
    assert pseudonym(MASTER, DEVICE, bytes(16), TSO, PURPOSE, "2025-03") != reference
    assert pseudonym(bytes(32), DEVICE, SALT, TSO, PURPOSE, "2025-03") != reference


def test_pseudonym_carries_no_ean_digits_and_is_not_a_hash_of_it(
    household: object, vault: privacy.IdentityVault
) -> None:
    device = vault.devices.of(**WHO)[0]
    ean = vault.prosumers.get(device.prosumer_id, **WHO).ean
    value = vault.pseudonyms.of(device.device_uuid, TSO, PURPOSE, "2025-03", **WHO)
    body = value.removeprefix("psn1_")
    assert not any(ch in "0189" for ch in body)  # base32 has no 0, 1, 8, 9: no digit run of an EAN
    assert ean not in value and ean[-6:] not in value
    digest = hashlib.sha256(ean.encode()).digest()
    for encoded in (digest.hex(), base64.b32encode(digest).decode().lower().rstrip("="),
                    base64.urlsafe_b64encode(digest).decode().rstrip("=")):
        # no 8-character run of the EAN's plain hash, in any of its usual spellings
        assert not any(encoded[i:i + 8] in value for i in range(len(encoded) - 7))
    assert hashlib.sha256(ean.encode()).hexdigest()[:26] != body


@pytest.mark.parametrize(
    "month", ["2025-3", "2025-13", "2025-00", "25-03", "2025/03", "2025-03-01"]
)
def test_month_must_be_yyyy_mm(month: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        pseudonym(MASTER, DEVICE, SALT, TSO, PURPOSE, month)


def test_separator_in_labels_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\|"):
        pseudonym(MASTER, DEVICE, SALT, "TSO|X", PURPOSE, "2025-03")


def test_month_of_uses_the_market_calendar() -> None:
    from datetime import UTC, datetime

    # 2025-03-31 22:30 UTC is already April in Amsterdam (CEST, UTC+2).
    assert privacy.month_of(datetime(2025, 3, 31, 22, 30, tzinfo=UTC)) == "2025-04"
    assert privacy.month_of(datetime(2025, 3, 31, 21, 30, tzinfo=UTC)) == "2025-03"


def test_key_file_versions_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# crowdflex keys\n1:{MASTER.hex()}\n2:{bytes(32).hex()}\n")
    provider = privacy.FileKeyProvider(path)
    assert isinstance(provider, privacy.KeyProvider)
    assert provider.current().version == 2
    assert provider.get(1).secret == MASTER
    assert provider.versions() == (1, 2)
    assert MASTER.hex() not in repr(provider.get(1))
    with pytest.raises(privacy.KeyUnavailable, match="version 3"):
        provider.get(3)
    path.write_text("1:abcd\n")
    with pytest.raises(privacy.KeyUnavailable, match="32 bytes"):
        privacy.FileKeyProvider(path)
    with pytest.raises(privacy.KeyUnavailable, match="cannot read"):
        privacy.FileKeyProvider(tmp_path / "missing")


def test_env_provider_needs_the_variable() -> None:
    with pytest.raises(privacy.KeyUnavailable, match="not set"):
        privacy.EnvKeyProvider("CROWDFLEX_TEST_NO_SUCH_VARIABLE", environ={})
    provider = privacy.EnvKeyProvider("K", environ={"K": f"7:{MASTER.hex()}"})
    assert provider.current().version == 7
