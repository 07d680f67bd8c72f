"""Prosumer payouts (exact accrual, half-up once per device per local month), statement exports,
and `crowdflex settle` refusing bad input files with exit 2 and the file and line named."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cbp.cli import main
from cbp.market import (
    MarketRules,
    PayoutLedger,
    prosumer_statement_csv,
    prosumer_statement_json,
    round_money,
)

RULES = MarketRules()
AT = datetime(2025, 3, 14, 13, 5, tzinfo=UTC)


def test_accrual_is_exact_and_rounded_once_on_the_statement() -> None:
    # Three activations of 0.1 kWh at 0.15 EUR/kWh: 0.015 each, 0.045 exact -> 0.05 half-up.
    # Rounding every accrual would pay 3 x 0.02 = 0.06.
    ledger = PayoutLedger(RULES)
    for _ in range(3):
        ledger.accrue("dev-1", AT, Decimal("0.1"), Decimal("0.15"))
    (line,) = ledger.statement("2025-03").lines
    assert line.delivered_kwh == Decimal("0.3")
    assert line.accrued_eur == Decimal("0.045")
    assert str(line.amount_eur) == "0.05"


def test_half_up_not_bankers_rounding() -> None:
    assert str(round_money(Decimal("0.025"))) == "0.03"  # half-even would give 0.02
    assert str(round_money(Decimal("2.505"))) == "2.51"
    assert str(round_money(Decimal("-0.005"))) == "-0.01"


def test_statement_total_is_the_sum_of_rounded_lines() -> None:
    # Two devices accrue 0.1 kWh * 0.125 EUR/kWh = 0.0125 each: lines 0.01 + 0.01 = 0.02 paid
    # (rounding the exact 0.025 total instead would give 0.03).
    ledger = PayoutLedger(RULES)
    ledger.accrue("dev-a", AT, Decimal("0.1"), Decimal("0.125"))
    ledger.accrue("dev-b", AT, Decimal("0.1"), Decimal("0.125"))
    statement = ledger.statement("2025-03")
    assert [str(ln.amount_eur) for ln in statement.lines] == ["0.01", "0.01"]
    assert sum(ln.accrued_eur for ln in statement.lines) == Decimal("0.025")
    assert str(statement.total_eur) == "0.02"


def test_month_is_the_local_month() -> None:
    ledger = PayoutLedger(RULES)
    # 2025-03-31 22:30Z is 2025-04-01 00:30 in Amsterdam (CEST, UTC+2).
    ledger.accrue("dev-1", datetime(2025, 3, 31, 22, 30, tzinfo=UTC), Decimal("2"), Decimal("0.15"))
    ledger.accrue("dev-1", datetime(2025, 3, 31, 21, 30, tzinfo=UTC), Decimal("1"), Decimal("0.15"))
    assert [str(ln.amount_eur) for ln in ledger.statement("2025-04").lines] == ["0.30"]
    assert [str(ln.amount_eur) for ln in ledger.statement("2025-03").lines] == ["0.15"]
    assert ledger.statement("2025-05").lines == ()
    with pytest.raises(ValueError, match="negative"):
        ledger.accrue("dev-1", AT, Decimal("-1"), Decimal("0.15"))


def test_prosumer_statement_exports() -> None:
    ledger = PayoutLedger(RULES)
    ledger.accrue("000042", AT, Decimal("1.000"), Decimal("0.15"))
    statement = ledger.statement("2025-03")
    as_json = json.loads(prosumer_statement_json(statement))
    assert as_json == {
        "month": "2025-03",
        "total_eur": "0.15",
        "lines": [{"prosumer_id": "000042", "delivered_kwh": "1.000", "accrued_eur": "0.15000",
                   "amount_eur": "0.15"}],
    }  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(prosumer_statement_csv(statement))))
    assert rows == [{"month": "2025-03", "prosumer_id": "000042", "delivered_kwh": "1.000",
                     "amount_eur": "0.15"}]  # fmt: skip


def test_prosumer_csv_shows_kwh_to_3_decimals_and_money_to_cents() -> None:
    # 0.1 kW for 4 s is 1/9000 kWh, not a finite decimal: 900 such samples accrue a Decimal a
    # hair under 0.1 kWh (0.0999...96). The CSV shows 0.100 kWh and EUR 0.02 (0.015 half-up).
    ledger = PayoutLedger(RULES)
    sample_kwh = Decimal("0.1") * 4 / 3600
    for _ in range(900):
        ledger.accrue("P00001", AT, sample_kwh, Decimal("0.15"))
    statement = ledger.statement("2025-03")
    assert statement.lines[0].delivered_kwh != Decimal("0.1")  # the ledger keeps it unrounded
    text = prosumer_statement_csv(statement)
    assert text == "month,prosumer_id,delivered_kwh,amount_eur\n2025-03,P00001,0.100,0.02\n"


def test_a_prosumer_with_two_devices_is_rounded_once() -> None:
    # Two devices of one prosumer accrue EUR 0.004 each: one line of 0.008 -> 0.01; rounding per
    # device would pay 0.00 + 0.00. Another prosumer's 0.006 is a line of its own: 0.01.
    ledger = PayoutLedger(RULES)
    ledger.accrue("P1", AT, Decimal("0.02"), Decimal("0.2"))
    ledger.accrue("P1", AT, Decimal("0.02"), Decimal("0.2"))
    ledger.accrue("P2", AT, Decimal("0.03"), Decimal("0.2"))
    statement = ledger.statement("2025-03")
    assert [(ln.prosumer_id, str(ln.amount_eur)) for ln in statement.lines] == [
        ("P1", "0.01"), ("P2", "0.01")]  # fmt: skip
    assert statement.accrued_eur == Decimal("0.014")
    assert str(statement.total_eur) == "0.02"


def _files(tmp_path: Path, measured: str) -> list[str]:
    setpoints = tmp_path / "S.csv"
    setpoints.write_text("timestamp,mw\n2025-03-14T14:03:00+01:00,1.0\n", encoding="utf-8")
    meas = tmp_path / "M.csv"
    meas.write_text(measured, encoding="utf-8")
    return ["settle", "--setpoints", str(setpoints), "--measured", str(meas),
            "--clearing-price", "200", "--bid-price", "180"]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("timestamp,mw\n2025-03-14T14:03:00+01:00,9.2\nyesterday,9.1\n",
         "M.csv:3: 'yesterday' is not an ISO 8601 timestamp"),
        ("timestamp,mw\n2025-03-14T14:03:00,9.2\n", "M.csv:2: timestamp"),
        ("timestamp,mw\n2025-03-14T14:03:00+01:00,nine\n", "M.csv:2: mw 'nine' is not a decimal"),
        ("timestamp,mw\n2025-03-14T14:03:00+01:00,NaN\n", "M.csv:2: mw 'NaN' is not a finite"),
        ("timestamp,mw\n2025-03-14T14:03:00+01:00,9.2,x\n", "M.csv:2: expected 2 columns"),
        ("time,power\n", "M.csv:1: expected the header 'timestamp,mw'"),
        ("timestamp,mw\n", "M.csv: no samples"),
        ("timestamp,mw\n2025-03-14T14:13:00+01:00,9.2\n", "no meter data"),
    ],
)  # fmt: skip
def test_settle_refuses_bad_files_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    assert main(_files(tmp_path, content)) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith("crowdflex settle: ")


def test_settle_refuses_a_missing_file_and_off_grid_setpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _files(tmp_path, "timestamp,mw\n2025-03-14T14:02:00+01:00,9.2\n")
    argv[argv.index("--measured") + 1] = str(tmp_path / "absent.csv")
    assert main(argv) == 2
    assert "absent.csv: cannot read" in capsys.readouterr().err
    argv = _files(tmp_path, "timestamp,mw\n2025-03-14T14:02:00+01:00,9.2\n")
    (tmp_path / "S.csv").write_text("timestamp,mw\n2025-03-14T14:03:01+01:00,1\n")
    assert main(argv) == 2
    assert "off the 4-s grid" in capsys.readouterr().err
    assert main([*argv[:-4], "--clearing-price", "cheap", "--bid-price", "1"]) == 2
    assert "--clearing-price 'cheap'" in capsys.readouterr().err
