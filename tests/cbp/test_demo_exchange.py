"""The foundation demo runs end to end over real mutual TLS and SQLite, and every captured message
on the VEN-VTN link is a valid OpenADR 2.0b payload."""

from __future__ import annotations

from pathlib import Path

from cbp.demo import run_exchange
from schemas import OptType

from ..schemas.xsd_oracle import assert_xsd_valid


async def test_exchange_registers_acks_and_stores_telemetry(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = await run_exchange(tmp_path, say=lines.append)

    assert summary.ack is OptType.OPT_IN
    assert summary.telemetry_points == 15
    assert len(summary.ven_id.split(":")) == 10  # the VEN's certificate fingerprint
    assert [line[:5] for line in lines] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    captures = sorted((tmp_path / "captures" / "ven-vtn").glob("*.xml"))
    assert len(captures) == summary.captured_messages >= 10
    for capture in captures:
        assert_xsd_valid(capture.read_bytes())
    assert (tmp_path / "vtn.db").stat().st_size > 0
