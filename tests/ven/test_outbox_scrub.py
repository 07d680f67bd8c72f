"""ven.outbox.Outbox.scrub: the WAL truncated after an erasure, and a checkpoint that meets a
statement still running on the outbox's connection is not an error (it reports False)."""

from __future__ import annotations

from pathlib import Path

from ven.outbox import Outbox


async def test_scrub_truncates_the_wal_and_says_false_while_a_statement_runs(
        tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with await Outbox.open(path) as outbox:
        for n in range(3):
            await outbox.put("vtn", "EiReport", f"<report n='{n}'/>".encode())
        assert await outbox.scrub() is True
        assert Path(f"{path}-wal").stat().st_size == 0
        await outbox.put("vtn", "EiReport", b"<report n='3'/>")
        running = await outbox._db.execute("SELECT payload FROM outbox")  # a reader mid-way
        assert await running.fetchone() is not None
        assert await outbox.scrub() is False  # retried, then left to a later checkpoint
        await running.close()
        assert await outbox.scrub() is True
        assert Path(f"{path}-wal").stat().st_size == 0
