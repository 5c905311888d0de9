"""Inline SVG charts for the HTML report, drawn here: no library, nothing fetched when the
page is opened (a CI artifact viewer or a laptop offline shows them the same).

Each function returns one ``<svg>`` element (escaped text, a ``viewBox`` so it scales
to the page's width) or an empty string when there is nothing to draw.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

#: line colours, told apart also by the legend's order
PALETTE = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d",
           "#dc2626")
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 40


@dataclass(frozen=True)
class Series:
    """One line: its name, its points (epoch seconds, value) and maybe a fitted line
    ((t0, v0), (t1, v1)) drawn dashed."""

    name: str
    points: Sequence[tuple[float, float]]
    fitted: tuple[tuple[float, float], tuple[float, float]] | None = None


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def _day(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d")


def line_chart(title: str, series: Sequence[Series], fmt: Callable[[float], str],
               limit: float | None = None, limit_label: str = "limit") -> str:
    """Lines over time with their fitted (forecast) lines dashed and a limit in red."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return ""
    ts = [t for s in drawn for t, _ in s.points]
    vs = [v for s in drawn for _, v in s.points]
    for s in drawn:
        if s.fitted:
            ts += [s.fitted[0][0], s.fitted[1][0]]
            vs += [s.fitted[0][1], s.fitted[1][1]]
    if limit:
        vs.append(limit)
    t0, t1 = min(ts), max(ts)
    if t1 == t0:
        t0, t1 = t0 - 43200, t1 + 43200
    v1 = max(vs) * 1.05 or 1.0
    v0 = 0.0

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        v = min(max(v, v0), v1)
        return HEIGHT - BOTTOM - (v - v0) / (v1 - v0) * (HEIGHT - TOP - BOTTOM)

    out = [_open(title)]
    for v in _ticks(v0, v1):
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   'class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                   f"{escape(fmt(v))}</text>")
    ticks = _ticks(t0, t1, 3)
    for i, t in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        out.append(f'<text x="{x(t):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}">'
                   f"{_day(t)}</text>")
    if limit:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(limit):.1f}" '
                   f'y2="{y(limit):.1f}" class="limit"/>')
        out.append(f'<text x="{WIDTH - RIGHT}" y="{y(limit) - 4:.1f}" text-anchor="end" '
                   f'class="limit-label">{escape(limit_label)} {escape(fmt(limit))}</text>')
    for i, s in enumerate(drawn):
        colour = PALETTE[i % len(PALETTE)]
        pts = sorted(s.points)
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                   'stroke-width="2"/>')
        out += [f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>'
                for t, v in pts]
        if s.fitted:
            (a, av), (b, bv) = s.fitted
            out.append(f'<line x1="{x(a):.1f}" y1="{y(av):.1f}" x2="{x(b):.1f}" '
                       f'y2="{y(bv):.1f}" stroke="{colour}" class="forecast"/>')
        out.append(f'<text x="{LEFT + 8}" y="{TOP + 14 + 14 * i}" fill="{colour}">'
                   f"{escape(s.name)}</text>")
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, bars: Sequence[tuple[str, float, str]],
              fmt: Callable[[float], str], mark: float | None = None) -> str:
    """Horizontal bars (label, value, class: ``ok``, ``warning``, ``failure``), largest
    first as given; ``mark`` draws a dashed line at a threshold."""
    if not bars:
        return ""
    row, label_w = 22, 230
    height = TOP + row * len(bars) + 10
    top = max([v for _, v, _ in bars] + [mark or 0.0]) * 1.05 or 1.0

    def w(v: float) -> float:
        return max(v, 0.0) / top * (WIDTH - label_w - 90)

    out = [_open(title, height)]
    for i, (label, value, kind) in enumerate(bars):
        y = TOP + i * row
        short = label if len(label) <= 34 else label[:33] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">'
                   f"<title>{escape(label)}</title>{escape(short)}</text>")
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w(value):.1f}" height="{row - 6}"'
                   f' class="bar {escape(kind)}"/>')
        out.append(f'<text x="{label_w + w(value) + 6:.1f}" y="{y + 14}">'
                   f"{escape(fmt(value))}</text>")
    if mark:
        out.append(f'<line x1="{label_w + w(mark):.1f}" x2="{label_w + w(mark):.1f}" '
                   f'y1="{TOP - 4}" y2="{height - 6}" class="limit"/>')
    out.append("</svg>")
    return "".join(out)


def _open(title: str, height: int = HEIGHT) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title>")
