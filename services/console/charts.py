"""Server-rendered SVG bar charts with a text alternative (the same numbers are in a table beside it)."""

from __future__ import annotations

from markupsafe import Markup, escape

__all__ = ["bar_chart"]


def bar_chart(
    points: list[tuple[str, int]], title: str, chart_id: str, width: int = 640, height: int = 200
) -> Markup:
    """A bar per (label, value); `role=img` with a title and a summary for screen readers."""
    if not points:
        return Markup("")
    top = max(v for _, v in points) or 1
    gap, left, bottom = 2, 40, 24
    bar_w = max(1, (width - left) // len(points) - gap)
    bars = []
    for i, (label, value) in enumerate(points):
        h = round((height - bottom - 10) * value / top)
        x = left + i * (bar_w + gap)
        bars.append(
            f'<rect x="{x}" y="{height - bottom - h}" width="{bar_w}" height="{h}" fill="#0b3d2e">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
    total = sum(v for _, v in points)
    summary = (
        f"{len(points)} bars from {points[0][0]} to {points[-1][0]}; highest {top}, total {total}. "
        "The table below has every value."
    )
    return Markup(
        f'<svg role="img" aria-labelledby="{chart_id}-t {chart_id}-d" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width:{width}px">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(summary)}</desc>'
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#1b1b1b"/>'
        f'<text x="0" y="14" font-size="12">{top}</text>'
        f'<text x="0" y="{height - bottom}" font-size="12">0</text>'
        f'<text x="{left}" y="{height - 6}" font-size="12">{escape(points[0][0])}</text>'
        f'<text x="{width}" y="{height - 6}" font-size="12" text-anchor="end">{escape(points[-1][0])}</text>'
        + "".join(bars)
        + "</svg>"
    )
