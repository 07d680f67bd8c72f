"""The run audit: planted leaks fail and are named, clean folders pass."""

from __future__ import annotations

import hashlib
from pathlib import Path

import privacy
from privacy import IdentityVault
from tests.kit.runs import captured_report
from tests.kit.vaults import WHO, Household


def test_without_vault_the_shapes_still_catch_an_ean(run_dir: Path) -> None:
    leaked = run_dir / privacy.CAPTURE_SUBDIR / "0002-oadrUpdateReport.xml"
    leaked.write_bytes(captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa", "871687120000012345"))
    result = privacy.audit_run(run_dir)
    assert not result.passed
    assert [f.where for f in result.findings] == [str(leaked.relative_to(run_dir))]


def test_hidden_and_hashed_values_are_found(
    run_dir: Path, vault: IdentityVault, household: Household
) -> None:
    folder = run_dir / privacy.CAPTURE_SUBDIR
    uuid = household.device.device_uuid
    # digits written as character references still decode to the EAN
    escaped = "".join(f"&#{ord(c)};" for c in household.prosumer.ean)
    (folder / "a.xml").write_bytes(
        captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(b"req-1", escaped.encode())
    )
    (folder / "b.xml").write_bytes(
        captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa", f"urn:uuid:{uuid}")
    )
    md5 = hashlib.md5(household.device.serial.encode()).hexdigest()
    (folder / "c.xml").write_bytes(captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa", md5))
    result = privacy.audit_run(run_dir, vault.identity_values(**WHO))
    by_file: dict[str, str] = {}
    for f in result.findings:
        by_file[f.where.rsplit("/", 1)[-1]] = by_file.get(f.where.rsplit("/", 1)[-1], "") + f.what
    assert "vault EAN" in by_file["a.xml"]
    assert "device_uuid" in by_file["b.xml"]
    assert "unkeyed md5 of vault serial" in by_file["c.xml"]


def test_an_attribute_value_is_searched_as_the_parser_reads_it(
    run_dir: Path, vault: IdentityVault, household: Household
) -> None:
    """Tried: the postcode split by a newline inside an attribute, in a plain ASCII file (whose
    text nodes the raw search covers). The parser reads the newline as a space, so the vault
    postcode is found; the same with the outbound filter's detector passed in."""
    folder = run_dir / privacy.CAPTURE_SUBDIR
    number, letters = household.prosumer.postcode.split(" ")
    message = captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(
        b"<oadr:oadrUpdateReport", f'<oadr:oadrUpdateReport x="{number}\n{letters}"'.encode(), 1)
    assert message.isascii() and b"&" not in message and f"{number}\n".encode() in message
    (folder / "d.xml").write_bytes(message)
    outbound = privacy.OutboundFilter(privacy.OutboundPolicy(pool_ids=()), vault=vault)
    for result in (privacy.audit_run(run_dir, vault.identity_values(**WHO)),
                   privacy.audit_run(run_dir, detector=outbound.current_detector())):
        assert [f.where.rsplit("/", 1)[-1] for f in result.findings
                if "vault postcode" in f.what] == ["d.xml"]


def test_values_in_comments_processing_instructions_and_names_are_found(
    run_dir: Path, vault: IdentityVault, household: Household
) -> None:
    """Tried: the EAN in a comment before the root element, as a processing instruction's target
    after it, as the name of an attribute and in an unused namespace declared inside: each file
    is named."""
    folder = run_dir / privacy.CAPTURE_SUBDIR
    ean = household.prosumer.ean
    body = captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa")
    root_at = body.index(b"<oadr:")
    (folder / "e.xml").write_bytes(body[:root_at] + f"<!-- {ean} -->".encode() + body[root_at:])
    (folder / "f.xml").write_bytes(body + f"<?x{ean} y?>".encode())
    (folder / "g.xml").write_bytes(body.replace(
        b"<oadr:oadrPayload", f'<oadr:oadrPayload e{ean}="1"'.encode(), 1))
    (folder / "h.xml").write_bytes(body.replace(
        b"<oadr:oadrPayload", f'<oadr:oadrPayload xmlns:z="urn:{ean}"'.encode(), 1))
    result = privacy.audit_run(run_dir, vault.identity_values(**WHO))
    named = {f.where.rsplit("/", 1)[-1] for f in result.findings if "vault EAN" in f.what}
    assert named == {"e.xml", "f.xml", "g.xml", "h.xml"}
