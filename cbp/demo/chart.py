"""The pool-power chart of the demo results: one inline SVG, no scripts, no external resources.

Two panels on one time axis, so tracking can be judged at a glance in a 1400x900 screenshot:

- *pool consumption*: the +5-min baseline and the measured pool power (MW, axis from zero);
- *response*: the TSO setpoint, the delivered response (baseline - measured) and the awarded MW
  (MW, axis from zero). The setpoint is drawn wide underneath and the delivery narrow on top, so
  both stay visible when the pool tracks perfectly.

Samples are drawn as steps held for one sample period, so the area under a line is its energy.

Both panels shade the activation window (first setpoint to L samples past the last, the samples
settlement reads) and mark every ISP boundary in range. The legend sits right of the plots and
never over the data. Element ids (``legend``, ``series-*``, ``isp-boundary``, ``window``) are
stable for tests and for readers of the SVG.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

__all__ = ["PowerSeries", "Series", "pool_power_svg"]

WIDTH, HEIGHT = 1360, 780
_LEFT, _PLOT_RIGHT, _LEGEND_X = 90, 1010, 1030
_PANELS = ((60, 360), (430, 700))  # (top, bottom) of each plot area
_TIME_STEPS_S = (1, 2, 4, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """One line: (time, MW) points, how it is drawn, and its legend text."""

    key: str
    label: str
    colour: str
    width: float
    points: tuple[tuple[datetime, Decimal], ...]
    dash: str = ""
    step: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerSeries:
    """What the chart shows: the two panels' series, the window and the ISP boundaries."""

    title: str
    response_title: str  # e.g. "Response: upward = less consumption (MW)"
    consumption: tuple[Series, ...]
    response: tuple[Series, ...]
    window: tuple[datetime, datetime]
    isp_starts: tuple[tuple[datetime, str], ...]  # (start, label), in time order
    sample_period: timedelta


def _nice_step(span: float, most: int) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n giving at most ``most`` intervals over ``span``."""
    magnitude = 10.0 ** -6
    while True:
        for factor in (1.0, 2.0, 2.5, 5.0):
            if span / (factor * magnitude) <= most:
                return factor * magnitude
        magnitude *= 10


def _mw_text(value: float, step: float) -> str:
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-9:
        decimals += 1
    return f"{value:.{decimals}f}"


class _Frame:
    """Maps time and MW to pixels for one panel."""

    def __init__(self, t0: datetime, t1: datetime, top: int, bottom: int, top_mw: float) -> None:
        self.t0, self.span_s = t0, max((t1 - t0).total_seconds(), 1.0)
        self.top, self.bottom, self.top_mw = top, bottom, top_mw

    def x(self, at: datetime) -> float:
        return _LEFT + (at - self.t0).total_seconds() / self.span_s * (_PLOT_RIGHT - _LEFT)

    def y(self, mw: float) -> float:
        return self.bottom - mw / self.top_mw * (self.bottom - self.top)


def _panel(frame: _Frame, title: str, series: Sequence[Series], chart: PowerSeries,
           step: float) -> list[str]:  # fmt: skip
    out = [f'<text x="{_LEFT}" y="{frame.top - 12}" font-size="15" font-weight="bold">'
           f"{html.escape(title)}</text>"]  # fmt: skip
    w0, w1 = (frame.x(t) for t in chart.window)
    out.append(f'<rect class="window" x="{w0:.1f}" y="{frame.top}" width="{w1 - w0:.1f}" '
               f'height="{frame.bottom - frame.top}" fill="#ececec"/>')  # fmt: skip
    value = 0.0
    while value <= frame.top_mw + step / 1000:
        y = frame.y(value)
        out.append(f'<line x1="{_LEFT}" x2="{_PLOT_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#d8d8d8" stroke-width="1"/>')  # fmt: skip
        out.append(f'<text class="y-tick" x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{_mw_text(value, step)}</text>")  # fmt: skip
        value += step
    for start, label in chart.isp_starts:
        x = frame.x(start)
        if _LEFT <= x <= _PLOT_RIGHT:
            out.append(f'<line class="isp-boundary" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" '
                       f'y2="{frame.bottom}" stroke="#555" stroke-width="1" '
                       'stroke-dasharray="6 4"/>')  # fmt: skip
            out.append(f'<text x="{x + 4:.1f}" y="{frame.top + 14}" fill="#555">'
                       f"{html.escape(label)} starts</text>")  # fmt: skip
    middle = (frame.top + frame.bottom) / 2
    out.append(f'<text class="y-label" x="24" y="{middle:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 24 {middle:.0f})">MW</text>')  # fmt: skip
    out.append(f'<rect x="{_LEFT}" y="{frame.top}" width="{_PLOT_RIGHT - _LEFT}" '
               f'height="{frame.bottom - frame.top}" fill="none" stroke="#333"/>')  # fmt: skip
    for line in series:
        out.append(_polyline(frame, line, chart.sample_period))
    return out


def _polyline(frame: _Frame, line: Series, period: timedelta) -> str:
    coords: list[str] = []
    points = sorted(line.points)
    for n, (at, mw) in enumerate(points):
        y = frame.y(float(mw))
        coords.append(f"{frame.x(at):.1f},{y:.1f}")
        if line.step:  # a sample holds for its period: the area under the steps is the energy
            end = points[n + 1][0] if n + 1 < len(points) else at + period
            coords.append(f"{frame.x(end):.1f},{y:.1f}")
    dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
    return (f'<polyline id="series-{line.key}" fill="none" stroke="{line.colour}" '
            f'stroke-width="{line.width}" stroke-linejoin="round"{dash} '
            f'points="{" ".join(coords)}"/>')  # fmt: skip


def _time_axis(frame: _Frame, t0: datetime, t1: datetime) -> list[str]:
    span = (t1 - t0).total_seconds()
    step = next((s for s in _TIME_STEPS_S if span / s <= 10), _TIME_STEPS_S[-1])
    first = t0 + timedelta(seconds=-t0.timestamp() % step)
    out = []
    tick = first
    while tick <= t1:
        x = frame.x(tick)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.bottom}" y2="{frame.bottom + 6}" '
                   'stroke="#333"/>')  # fmt: skip
        out.append(f'<text class="x-tick" x="{x:.1f}" y="{frame.bottom + 22}" '
                   f'text-anchor="middle">{tick:%H:%M:%S}</text>')  # fmt: skip
        tick += timedelta(seconds=step)
    middle = (_LEFT + _PLOT_RIGHT) / 2
    out.append(f'<text class="x-label" x="{middle:.0f}" y="{frame.bottom + 48}" '
               'text-anchor="middle">time (UTC)</text>')  # fmt: skip
    return out


def _legend(chart: PowerSeries) -> list[str]:
    entries = [*chart.consumption, *chart.response]
    height = 36 + 24 * (len(entries) + 2)
    top = _PANELS[0][0]
    out = [f'<g id="legend"><rect id="legend-box" x="{_LEGEND_X}" y="{top}" '
           f'width="{WIDTH - _LEGEND_X - 10}" height="{height}" fill="#fff" stroke="#999"/>',
           f'<text x="{_LEGEND_X + 12}" y="{top + 22}" font-weight="bold">Legend</text>']
    y = top + 46
    for line in entries:
        dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
        out.append(f'<line x1="{_LEGEND_X + 12}" x2="{_LEGEND_X + 44}" y1="{y - 4}" '
                   f'y2="{y - 4}" stroke="{line.colour}" stroke-width="{line.width}"{dash}/>')
        out.append(f'<text x="{_LEGEND_X + 52}" y="{y}">{html.escape(line.label)}</text>')
        y += 24
    out.append(f'<rect x="{_LEGEND_X + 12}" y="{y - 14}" width="32" height="14" '
               'fill="#ececec"/>')  # fmt: skip
    out.append(f'<text x="{_LEGEND_X + 52}" y="{y}">activation window</text>')
    y += 24
    out.append(f'<line x1="{_LEGEND_X + 28}" x2="{_LEGEND_X + 28}" y1="{y - 16}" y2="{y + 2}" '
               'stroke="#555" stroke-dasharray="6 4"/>')  # fmt: skip
    out.append(f'<text x="{_LEGEND_X + 52}" y="{y}">ISP boundary</text></g>')
    return out


def pool_power_svg(chart: PowerSeries) -> str:
    """The chart as one ``<svg>`` element; a note instead when there is nothing to draw."""
    points = [p for s in (*chart.consumption, *chart.response) for p in s.points]
    if not points:
        return "<p>no delivery data to draw</p>"
    pad = max(2 * chart.sample_period, (chart.window[1] - chart.window[0]) / 20)
    t0 = min(min(p[0] for p in points), chart.window[0]) - pad
    t1 = max(max(p[0] for p in points), chart.window[1]) + pad
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">',
           f'<text x="{_LEFT}" y="24" font-size="17">{html.escape(chart.title)}</text>']
    frame = _Frame(t0, t1, *_PANELS[0], 1.0)
    titles = ("Pool consumption (MW)", chart.response_title)
    for (top, bottom), title, series in zip(_PANELS, titles, (chart.consumption, chart.response),
                                            strict=True):  # fmt: skip
        highest = max((float(mw) for s in series for _, mw in s.points), default=1.0)
        step = _nice_step(highest * 1.05 or 1.0, 6)
        top_mw = step * max(1, -(-highest * 1.05 // step))
        frame = _Frame(t0, t1, top, bottom, top_mw)
        out += _panel(frame, title, series, chart, step)
    out += _time_axis(frame, t0, t1)
    out += _legend(chart)
    out.append("</svg>")
    return "\n".join(out)
