"""Small, dependency-free SVG charts for the HTML report: lines, step lines, bands, reference lines, axes.

Usage: c = Chart("plot-x", Scale(0, 10, "x"), Scale(0, 1, "y")); c.line(xs, ys, Style("#0072B2")); c.svg()

Everything is inline SVG with explicit attributes (no CSS classes needed, no script), so a chart prints and
opens offline. Lines carry a dash pattern besides a colour so they stay apart in greyscale, and each drawn
element has a `<title>` (a tooltip in browsers, a description for screen readers). `None` or non-finite
values break a line instead of being drawn. A log axis is drawn by passing log10 values with
`Scale(pow10=True)`: ticks then fall on whole powers of ten and read 0.1, 1, 10, … 10⁶.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

Num = float | int | None
WIDTH, HEIGHT = 1000, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 18, 14, 42
INK, GRID, MUTED = "#222", "#ddd", "#666"
HALO = 'stroke="#fff" stroke-width="3" stroke-opacity="0.85" paint-order="stroke"'
"""A white outline under labels drawn over lines, so they stay readable."""
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True, slots=True)
class Style:
    """How one series is drawn: colour, dash pattern (SVG stroke-dasharray, "" = solid), width."""

    color: str
    dash: str = ""
    width: float = 2.0


@dataclass(frozen=True, slots=True)
class Scale:
    """An axis: data range, label, and whether values are log10 exponents (ticks at powers of ten)."""

    lo: float
    hi: float
    label: str
    pow10: bool = False

    def frac(self, v: float) -> float:
        """Where `v` falls between lo (0) and hi (1)."""
        span = self.hi - self.lo
        return (v - self.lo) / span if span > 0 else 0.5

    def ticks(self) -> list[float]:
        """Tick positions: whole powers of ten (pow10), else 1-2-5 steps."""
        if self.pow10:
            lo, hi = math.ceil(self.lo), math.floor(self.hi)
            every = max(1, math.ceil((hi - lo + 1) / 8))
            return [float(k) for k in range(lo, hi + 1) if k % every == 0]
        return nice_ticks(self.lo, self.hi)

    def label_of(self, v: float) -> str:
        """A tick's text."""
        if not self.pow10:
            return f"{v:.6g}"
        k = round(v)
        return f"{10.0**k:g}" if -2 <= k <= 3 else "10" + str(k).translate(SUPERSCRIPT)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """About `target` round tick values (1, 2, 5 × 10ᵏ apart) within [lo, hi]."""
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo]
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 12) for i in range(count)]


def finite(v: Num) -> bool:
    """`v` is a number that can be drawn."""
    return v is not None and math.isfinite(v)


def padded(values: Sequence[Num], pad: float = 0.05, floor: float | None = None) -> tuple[float, float]:
    """(lo, hi) covering the finite values with `pad` of the span added on both sides (0..1 if none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if floor is not None:
        xs = [max(x, floor) for x in xs]
    if not xs:
        return 0.0, 1.0
    lo, hi = min(xs), max(xs)
    extra = (hi - lo) * pad or abs(hi) * pad or 1.0
    return lo - extra, hi + extra


@dataclass
class Chart:
    """One plot area with axes; add series, then take `svg()` and `legend_html()`."""

    chart_id: str
    x: Scale
    y: Scale
    title: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    parts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    legend: list[tuple[str, Style, bool]] = field(default_factory=list)

    def _px(self, v: float) -> float:
        return LEFT + self.x.frac(v) * (self.width - LEFT - RIGHT)

    def _py(self, v: float) -> float:
        return self.height - BOTTOM - self.y.frac(v) * (self.height - TOP - BOTTOM)

    def _keep(self, label: str | None, style: Style, band: bool = False) -> None:
        if label:
            self.legend.append((label, style, band))

    def line(
        self, xs: Sequence[Num], ys: Sequence[Num], style: Style, label: str | None = None, step: bool = False
    ) -> None:
        """A polyline through the points (a step line holding each value until the next x if `step`)."""
        d, pen_down, prev_y = [], False, 0.0
        for x, y in zip(xs, ys, strict=False):
            if x is None or y is None or not finite(x) or not finite(y):
                pen_down = False
                continue
            px, py = self._px(float(x)), self._py(float(y))
            if pen_down and step:
                d.append(f"L{px:.1f},{prev_y:.1f}")
            d.append(f"{'L' if pen_down else 'M'}{px:.1f},{py:.1f}")
            pen_down, prev_y = True, py
        if d:
            self.parts.append(
                f'<path d="{" ".join(d)}" fill="none"{_stroke(style)} stroke-linejoin="round">'
                f"<title>{escape(label or '')}</title></path>"
            )
        self._keep(label, style)

    def band(self, xs: Sequence[Num], lo: Sequence[Num], hi: Sequence[Num], style: Style, label: str) -> None:
        """A shaded interval between `lo` and `hi` (contiguous runs of finite points)."""
        run: list[tuple[float, float, float]] = []
        for x, a, b in [*zip(xs, lo, hi, strict=False), (None, None, None)]:
            if x is not None and a is not None and b is not None and finite(x) and finite(a) and finite(b):
                run.append((self._px(float(x)), self._py(float(a)), self._py(float(b))))
                continue
            if len(run) > 1:
                pts = [f"{px:.1f},{py:.1f}" for px, _, py in run] + [
                    f"{px:.1f},{py:.1f}" for px, py, _ in run[::-1]
                ]
                self.parts.append(
                    f'<polygon points="{" ".join(pts)}" fill="{style.color}" fill-opacity="0.18" '
                    f'stroke="{style.color}" stroke-opacity="0.5" stroke-width="0.8"{_dash(style)}>'
                    f"<title>{escape(label)}</title></polygon>"
                )
            run = []
        self._keep(label, style, band=True)

    def hline(self, y: float, style: Style, label: str, right: bool = False) -> None:
        """A horizontal reference line with its label at the left end (or the right one)."""
        if not finite(y) or not self.y.lo <= y <= self.y.hi:
            return
        py, x0, x1 = self._py(y), LEFT, self.width - RIGHT
        tx, anchor = (x1 - 6, "end") if right else (x0 + 6, "start")
        self.parts.append(
            f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}"{_stroke(style)}>'
            f"<title>{escape(label)}</title></line>"
            f'<text x="{tx}" y="{py - 4:.1f}" text-anchor="{anchor}" font-size="11" '
            f'fill="{style.color}" {HALO}>{escape(label)}</text>'
        )

    def vline(self, x: float, style: Style, label: str) -> None:
        """A vertical marker (a decision) with its label at the top."""
        if not finite(x) or not self.x.lo <= x <= self.x.hi:
            return
        px = self._px(x)
        # Near the right edge the label goes on the left of the line, so the frame does not cut it.
        right = px > self.width - RIGHT - 8 * len(label)
        anchor, tx = ("end", px - 3) if right else ("start", px + 3)
        self.parts.append(
            f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{self.height - BOTTOM}"{_stroke(style)}>'
            f"<title>{escape(label)}</title></line>"
            f'<text x="{tx:.1f}" y="{TOP + 11}" text-anchor="{anchor}" font-size="11" '
            f'fill="{style.color}" {HALO}>{escape(label)}</text>'
        )

    def text(self, x: float, y: float, label: str, style: Style, end: bool = True) -> None:
        """A label just above a data point, ending there (or starting there): direct labelling reads
        without colour."""
        if finite(x) and finite(y) and self.y.lo <= y <= self.y.hi:
            px = self._px(x) + (-4 if end else 4)
            self.parts.append(
                f'<text x="{px:.1f}" y="{self._py(y) - 5:.1f}" text-anchor="{"end" if end else "start"}" '
                f'font-size="11" fill="{style.color}" {HALO}>{escape(label)}</text>'
            )

    def _axes(self) -> str:
        w, h, bottom = self.width, self.height, self.height - BOTTOM
        frame = f'x="{LEFT}" y="{TOP}" width="{w - LEFT - RIGHT}" height="{bottom - TOP}"'
        out = [f'<rect {frame} fill="none" stroke="{MUTED}"/>']
        for t in self.y.ticks():
            py = self._py(t)
            out.append(
                f'<line x1="{LEFT}" y1="{py:.1f}" x2="{w - RIGHT}" y2="{py:.1f}" stroke="{GRID}"/>'
                f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" font-size="11" fill="{INK}">'
                f"{escape(self.y.label_of(t))}</text>"
            )
        for t in self.x.ticks():
            px = self._px(t)
            out.append(
                f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 5}" stroke="{MUTED}"/>'
                f'<text x="{px:.1f}" y="{bottom + 18}" text-anchor="middle" font-size="11" fill="{INK}">'
                f"{escape(self.x.label_of(t))}</text>"
            )
        out.append(
            f'<text x="{(LEFT + w - RIGHT) / 2:.0f}" y="{h - 6}" text-anchor="middle" font-size="12" '
            f'fill="{INK}">{escape(self.x.label)}</text>'
            f'<text transform="translate(14,{(TOP + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle" '
            f'font-size="12" fill="{INK}">{escape(self.y.label)}</text>'
        )
        return "".join(out)

    def svg(self) -> str:
        """The chart as one `<svg>` element (scales to its container's width)."""
        clip = f"clip-{self.chart_id}"
        w, h = self.width, self.height
        return (
            f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'role="img" aria-label="{escape(self.title)}" font-family="system-ui, sans-serif">'
            f"<title>{escape(self.title)}</title>"
            f'<defs><clipPath id="{clip}"><rect x="{LEFT}" y="{TOP}" width="{w - LEFT - RIGHT}" '
            f'height="{h - TOP - BOTTOM}"/></clipPath></defs>'
            f'{self._axes()}<g clip-path="url(#{clip})">{"".join(self.parts)}</g></svg>'
        )

    def legend_html(self) -> str:
        """The legend as an HTML list, each entry with a sample of its line or band."""
        items = []
        for label, style, band in self.legend:
            mark = (
                f'<rect x="1" y="2" width="26" height="8" fill="{style.color}" '
                f'fill-opacity="0.25"{_stroke(style)}/>'
                if band
                else f'<line x1="1" y1="6" x2="27" y2="6"{_stroke(style)}/>'
            )
            items.append(
                f'<li><svg width="28" height="12" aria-hidden="true">{mark}</svg>{escape(label)}</li>'
            )
        return f'<ul class="legend">{"".join(items)}</ul>' if items else ""


def _dash(style: Style) -> str:
    return f' stroke-dasharray="{style.dash}"' if style.dash else ""


def _stroke(style: Style) -> str:
    return f' stroke="{style.color}" stroke-width="{style.width}"{_dash(style)}'
