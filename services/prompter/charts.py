"""Server-rendered SVG bar charts a resident can read at a glance, with a text alternative (pure).

Each chart is an `<svg role="img">` with a `<title>` and `<desc>` (the plain-language summary), value
labels on the bars, and the page shows the same numbers in a table beneath it: no JavaScript needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

__all__ = ["Series", "bar_chart"]

_W, _H, _LEFT, _BOTTOM, _TOP = 640, 240, 36, 44, 28


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[int]
    colour: str  # high contrast on white (checked against WCAG 3:1 for graphics)


def bar_chart(
    chart_id: str, title: str, desc: str, labels: Sequence[str], series: Sequence[Series]
) -> Markup:
    """Grouped bars, one group per label; every series has one value per label."""
    if any(len(s.values) != len(labels) for s in series):
        raise ValueError("every series needs one value per label")
    top = max([v for s in series for v in s.values] + [1])
    plot_w, plot_h = _W - _LEFT - 8, _H - _BOTTOM - _TOP
    group_w = plot_w / max(1, len(labels))
    bar_w = max(2.0, (group_w - 6) / max(1, len(series)))
    parts = [
        f'<svg id="{escape(chart_id)}" role="img" aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d"'
        f' viewBox="0 0 {_W} {_H}" width="100%" style="max-width:{_W}px" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_W - 8}" y2="{_TOP + plot_h}" stroke="#1b1b1b"/>',
    ]
    for i, label in enumerate(labels):
        x0 = _LEFT + i * group_w + 3
        for j, s in enumerate(series):
            v = s.values[i]
            h = plot_h * v / top
            x, y = x0 + j * bar_w, _TOP + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{s.colour}">'
                f"<title>{escape(s.name)}, {escape(label)}: {v}</title></rect>"
            )
            if v:
                parts.append(
                    f'<text x="{x + (bar_w - 1) / 2:.1f}" y="{y - 3:.1f}" font-size="11" text-anchor="middle"'
                    f' fill="#1b1b1b">{v}</text>'
                )
        parts.append(
            f'<text x="{x0 + (group_w - 6) / 2:.1f}" y="{_TOP + plot_h + 16}" font-size="12"'
            f' text-anchor="middle" fill="#1b1b1b">{escape(label)}</text>'
        )
    for j, s in enumerate(series):
        x = _LEFT + j * 170
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{s.colour}"/>')
        parts.append(f'<text x="{x + 16}" y="15" font-size="12" fill="#1b1b1b">{escape(s.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
