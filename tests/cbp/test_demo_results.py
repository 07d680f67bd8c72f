"""The demo's pool-power page, rendered by headless Chromium at 1400x900 and inspected.

A synthetic settled activation (one-minute ISPs, 0.7 MW awarded, the pool following 1 sample
late and over-delivering a little at the top of the ramp) goes through the page's own code;
Chromium (Debian package ``chromium``) takes a screenshot, whose pixels must show every series
colour, and dumps the DOM after a script the test adds to the copy it renders, which reports the
drawn geometry: the legend must not touch any plotted line, every series must lie inside its
panel, both y axes start at zero. Outside CI the test skips when Chromium is missing, naming the
package; with ``CROWDFLEX_REQUIRE_CHROMIUM`` set (``.ci/run``) a missing Chromium fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cbp.demo.results import pool_power_html, power_series, statement_text
from cbp.market import (
    Award,
    Direction,
    IspCalendar,
    MarketRules,
    PayoutLedger,
    Sample,
    settle_tso,
    validate_delivery,
)
from cbp.roles.tso import Activation

RULES = MarketRules.compressed()
DT = RULES.sample_period
CALENDAR = IspCalendar(RULES)
START = datetime(2026, 12, 6, 9, 2, tzinfo=UTC)
ISP = CALENDAR.isp_at(START)
COLOURS = {"baseline": (0x1F, 0x77, 0xB4), "measured": (0x2C, 0xA0, 0x2C),
           "setpoint": (0xD6, 0x27, 0x28), "delivered": (0x6A, 0x3D, 0x9A),
           "awarded": (0xFF, 0x7F, 0x0E)}  # fmt: skip


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CROWDFLEX_REQUIRE_CHROMIUM"):
            pytest.fail("CROWDFLEX_REQUIRE_CHROMIUM is set but chromium is not installed")
        pytest.skip("needs the Debian package chromium (apt-get install -y chromium)")
    return found


def _activation() -> Activation:
    start = CALENDAR.isp_start(ISP)
    ramp = [Decimal("0.2"), Decimal("0.45"), Decimal("0.7")]
    values = ramp + [Decimal("0.7")] * 9 + ramp[::-1]
    setpoints = tuple(Sample(at=start + k * DT, value=v) for k, v in enumerate(values))
    response = {s.at + DT: s.value + (Decimal("0.05") if s.value == Decimal("0.7") else 0)
                for s in setpoints}  # fmt: skip
    span = [start + k * DT for k in range(-20, len(values) + 20)]
    measured = tuple(Sample(at=t, value=Decimal("9.1") - response.get(t, Decimal(0)))
                     for t in span)  # fmt: skip
    baseline = tuple(Sample(at=t, value=Decimal("9.1")) for t in span)
    delivery = validate_delivery(setpoints, measured, baseline, RULES)
    award = Award(offer_id="o-1", isp=ISP, direction=Direction.UP, mw=Decimal("0.7"),
                  bid_price_eur_per_mwh=Decimal("180"),
                  clearing_price_eur_per_mwh=Decimal("212.40"))  # fmt: skip
    statement = settle_tso(delivery, clearing_price=Decimal("212.40"), bid_price=Decimal("180"),
                           rules=RULES, isp=ISP)  # fmt: skip
    return Activation(event_id="act-1", ven_id="agg", pool_id="pool-1", award=award,
                      setpoints=setpoints, sent_at=start - DT, statement=statement,
                      delivery=delivery)  # fmt: skip


def _page() -> str:
    ledger = PayoutLedger(RULES)
    ledger.accrue("P00001", START, Decimal("0.1"), Decimal("0.15"))
    activation = _activation()
    explained = statement_text(activation, ledger.statement("2026-12"), RULES)
    return pool_power_html(power_series(activation, CALENDAR, RULES), explained)


# Measures every drawn element once the page has laid out, and writes the result into the DOM
# (only in the test's copy: the page itself carries no script).
_PROBE = """<script>
const box = e => { const r = e.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
const q = s => Array.from(document.querySelectorAll(s));
const out = {legend: box(document.getElementById('legend')),
  legendBox: box(document.getElementById('legend-box')),
  legendTexts: q('#legend text').map(box),
  series: Object.fromEntries(q('[id^="series-"]').map(e => [e.id, box(e)])),
  panels: q('svg > rect[fill="none"]').map(box),
  isp: q('.isp-boundary').length, window: q('.window').length,
  yTicks: q('.y-tick').map(e => e.textContent), xTicks: q('.x-tick').map(e => e.textContent),
  labels: q('.x-label, .y-label').map(e => e.textContent)};
const pre = document.createElement('pre'); pre.id = 'geometry';
pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
</script>"""


def _run(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
             "--window-size=1400,900"]  # fmt: skip
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True,
                          timeout=120, check=True, cwd=tmp_path)  # fmt: skip


def _pixels(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, data, width, height, channels = 8, b"", 0, 0, 0
    while at < len(png):
        (length,), kind = struct.unpack(">I", png[at:at + 4]), png[at + 4:at + 8]
        body = png[at + 8:at + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            data += body
        at += 12 + length
    raw, stride = zlib.decompress(data), width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        at = y * (stride + 1)
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                      else corner)) & 0xFF  # fmt: skip
        rows.append(line)
        previous = line
    pixels = [tuple(row[i:i + 3]) for row in rows for i in range(0, stride, channels)]
    return width, height, pixels  # type: ignore[return-value]


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] \
        and b["top"] < a["bottom"]


def test_the_page_is_self_contained() -> None:
    page = _page()
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]


def test_the_statement_below_the_chart_explains_every_figure() -> None:
    page = _page()
    for start in ("requested ", "delivered ", "settled ", "ratio ", "payment EUR ",
                  "penalty EUR ", "net EUR ", "prosumers EUR "):  # fmt: skip
        assert f"<li>{start}" in page, start
    # The pool over-delivers 0.05 MW on the 11 samples of 0.7 MW: 0.55 MW-samples = 0.000611 MWh
    # delivered above the cap, so settled is below delivered at a ratio over 1.
    assert "0.000611 MWh was delivered above that and is not paid" in page
    # one prosumer accrued 0.1 kWh * 0.15 = EUR 0.015, paid 0.02 after rounding once
    assert ("<li>prosumers EUR 0.02: 1 prosumer line(s), each prosumer&#x27;s month rounded half-up"
            " to the cent once; they accrued EUR 0.015000 before rounding, so rounding adds"
            " EUR 0.01</li>") in page  # fmt: skip


def test_chromium_screenshot_shows_every_series_and_the_legend_clear_of_the_data(
    tmp_path: Path,
) -> None:
    chromium = _chromium()
    (tmp_path / "pool-power.html").write_text(_page(), encoding="utf-8")
    (tmp_path / "probe.html").write_text(_page().replace("</body>", _PROBE + "</body>"),
                                         encoding="utf-8")  # fmt: skip
    _run(chromium, tmp_path, "--screenshot=shot.png", "pool-power.html")
    dom = _run(chromium, tmp_path, "--dump-dom", "probe.html").stdout

    width, height, pixels = _pixels((tmp_path / "shot.png").read_bytes())
    assert (width, height) == (1400, 900)
    counts = {name: pixels.count(rgb) for name, rgb in COLOURS.items()}
    assert all(n >= 100 for n in counts.values()), counts

    found = re.search(r'<pre id="geometry">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    geometry = json.loads(found.group(1).replace("&quot;", '"'))
    legend, series = geometry["legend"], geometry["series"]
    assert set(series) == {f"series-{name}" for name in COLOURS}
    top, bottom = geometry["panels"]
    for name, box in series.items():
        assert not _overlap(legend, box), name
        panel = top if name in ("series-baseline", "series-measured") else bottom
        assert panel["top"] - 5 <= box["top"] and box["bottom"] <= panel["bottom"] + 5, name
        assert box["right"] <= legend["left"], name
    assert legend["bottom"] <= 900 and bottom["bottom"] <= 900  # all in the screenshot
    frame = geometry["legendBox"]
    assert all(frame["left"] <= t["left"] and t["right"] <= frame["right"]
               for t in geometry["legendTexts"]), "a legend label runs out of its box"
    # both panels from zero, one unit label each, time in UTC with several ticks
    assert [float(t) for t in geometry["yTicks"]].count(0.0) == 2
    assert sorted(geometry["labels"]) == ["MW", "MW", "time (UTC)"]
    assert len(geometry["xTicks"]) >= 4
    # the activation window in both panels; the ISP boundaries in range, in both panels
    assert geometry["window"] == 2
    assert geometry["isp"] >= 4 and geometry["isp"] % 2 == 0


def test_isp_boundaries_fall_on_the_calendar() -> None:
    chart = power_series(_activation(), CALENDAR, RULES)
    starts = [at for at, _ in chart.isp_starts]
    assert CALENDAR.isp_start(ISP) in starts and CALENDAR.isp_end(ISP) in starts
    assert all(CALENDAR.isp_start(CALENDAR.isp_at(at)) == at for at in starts)
    assert chart.window == (CALENDAR.isp_start(ISP),
                            CALENDAR.isp_start(ISP) + 17 * DT)  # 15 setpoints + L = 2  # fmt: skip


def test_a_downward_activation_is_labelled_as_one() -> None:
    activation = _activation()
    activation.award = replace(activation.award, direction=Direction.DOWN)
    chart = power_series(activation, CALENDAR, RULES)
    assert chart.response_title == "Response: downward = more consumption (MW)"
    assert chart.response[1].label == "delivered = measured - baseline, >= 0"
