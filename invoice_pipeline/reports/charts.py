"""Small inline SVG charts for the HTML report: no JavaScript, no external resources, every
label escaped. Inline SVG in HTML5 needs no namespace declaration, so the page references no URL."""

from __future__ import annotations

import unicodedata
from html import escape

FONT = "'PingFang SC','Microsoft YaHei','Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif"
BLUE, TEAL, GREY, RED, AMBER = "#1F4E79", "#2E8B8B", "#D9D9D9", "#C0392B", "#D68910"


def _text_width(text: str, size: int = 12) -> float:
    return sum(size if unicodedata.east_asian_width(ch) in "WF" else size * 0.6 for ch in text)


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="{FONT}" font-size="12">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def hbar_chart(title: str, items: list[tuple[str, float, str]], color: str = BLUE, width: int = 720) -> str:
    """Horizontal bars: (label, value, value as text) per bar, longest bar = largest value."""
    if not items:
        return _svg(width, 40, title, [f'<text x="8" y="24" fill="#595959">{escape("无数据")}</text>'])
    bar_h, gap, top = 20, 8, 8
    label_w = min(260, max(_text_width(label) for label, _, _ in items) + 12)
    value_w = max(_text_width(text) for _, _, text in items) + 12
    plot_w = max(80, width - label_w - value_w)
    biggest = max((v for _, v, _ in items), default=0) or 1
    body = []
    for i, (label, value, text) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = max(0.0, value) / biggest * plot_w
        body.append(
            f'<text x="{label_w - 8:.0f}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w:.0f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}" rx="2"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 14}" fill="#333">{escape(text)}</text>'
        )
    height = top * 2 + len(items) * (bar_h + gap)
    return _svg(width, height, title, body)


def share_chart(title: str, rows: list[tuple[str, float | None, float | None]], width: int = 720) -> str:
    """Per row two bars on a 0–100% scale: share by count and share by money."""
    bar_h, top, label_w, value_w = 16, 28, 70, 60
    plot_w = width - label_w - value_w
    body = [
        f'<rect x="{label_w}" y="6" width="12" height="12" fill="{BLUE}"/>'
        f'<text x="{label_w + 18}" y="16">{escape("按张数")}</text>'
        f'<rect x="{label_w + 90}" y="6" width="12" height="12" fill="{TEAL}"/>'
        f'<text x="{label_w + 108}" y="16">{escape("按金额")}</text>'
    ]
    for i, (label, by_count, by_money) in enumerate(rows):
        y = top + i * (2 * bar_h + 14)
        body.append(f'<text x="{label_w - 8}" y="{y + bar_h + 4}" text-anchor="end">{escape(label)}</text>')
        for j, (share, color) in enumerate(((by_count, BLUE), (by_money, TEAL))):
            yy = y + j * bar_h
            body.append(f'<rect x="{label_w}" y="{yy}" width="{plot_w}" height="{bar_h - 2}" fill="{GREY}"/>')
            if share is not None:
                w = max(0.0, min(1.0, share)) * plot_w
                body.append(
                    f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}"/>'
                )
            text = "—" if share is None else f"{share * 100:.1f}%"
            body.append(f'<text x="{label_w + plot_w + 6}" y="{yy + 12}">{escape(text)}</text>')
    height = top + len(rows) * (2 * bar_h + 14) + 4
    return _svg(width, height, title, body)


def column_chart(
    title: str,
    items: list[tuple[str, float, str]],
    colors: list[str] | None = None,
    width: int = 480,
    height: int = 220,
) -> str:
    """Vertical bars: (label, value, value as text) per bar."""
    colors = colors or [BLUE] * len(items)
    bottom, top, left = 36, 24, 16
    plot_h = height - bottom - top
    slot = (width - 2 * left) / max(1, len(items))
    biggest = max((v for _, v, _ in items), default=0) or 1
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" stroke="#999"/>'
    ]
    for i, (label, value, text) in enumerate(items):
        h = max(0.0, value) / biggest * plot_h
        x = left + i * slot + slot * 0.2
        y = height - bottom - h
        cx = left + i * slot + slot / 2
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.6:.1f}" height="{h:.1f}" '
            f'fill="{colors[i % len(colors)]}" rx="2"/>'
            f'<text x="{cx:.1f}" y="{y - 6:.1f}" text-anchor="middle">{escape(text)}</text>'
            f'<text x="{cx:.1f}" y="{height - bottom + 18}" text-anchor="middle">{escape(label)}</text>'
        )
    return _svg(width, height, title, body)
