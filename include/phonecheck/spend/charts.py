"""The Phone checks page's inline SVG charts (no script, no internet-hosted asset): a budget bar,
daily spend stacked per vendor, the outcome mix per vendor with what each outcome means."""

from __future__ import annotations

import html
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from phonecheck.spend.money import for_display, format_money
from phonecheck.spend.outcomes import explain

DAILY_DAYS = 30
PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


_money = format_money


def budget_bar_svg(used: Decimal, budget: Decimal | None, width: int = 220) -> str:
    if not budget:
        return ""
    share = min(float(used / budget), 1.0) if budget > 0 else 1.0
    colour = "#dc2626" if share >= 0.9 else "#f59e0b" if share >= 0.7 else "#16a34a"
    return (
        f'<svg width="{width}" height="12" role="img" aria-label="{share:.0%} of budget">'
        f'<rect width="{width}" height="12" fill="#e5e7eb" rx="3"/>'
        f'<rect width="{width * share:.1f}" height="12" fill="{colour}" rx="3"/></svg>'
    )


def daily_spend_svg(daily: list[dict[str, Any]], today: date, width: int = 720, height: int = 180) -> str:
    """Stacked bars: spend per day and vendor (one currency per chart: the most common one)."""
    if not daily:
        return '<p class="muted">No priced results in the last 30 days.</p>'
    currencies: dict[str, Decimal] = {}
    for row in daily:
        if row["currency"] and row["spend"] is not None:
            currencies[row["currency"]] = currencies.get(row["currency"], Decimal(0)) + Decimal(row["spend"])
    if not currencies:
        return '<p class="muted">No priced results in the last 30 days.</p>'
    currency = max(currencies, key=lambda c: currencies[c])
    days = [today - timedelta(days=DAILY_DAYS - 1 - i) for i in range(DAILY_DAYS)]
    vendors = sorted({r["vendor"] for r in daily if r["currency"] == currency})
    per = {(r["day"], r["vendor"]): Decimal(r["spend"] or 0) for r in daily if r["currency"] == currency}
    totals = [sum((per.get((d, v), Decimal(0)) for v in vendors), Decimal(0)) for d in days]
    top = max(totals) or Decimal(1)
    left, bottom = 56, 20
    plot_w, plot_h = width - left - 8, height - bottom - 10
    bar_w = plot_w / len(days)
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="daily spend in {_e(currency)}">',
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 8}" y2="{10 + plot_h}" stroke="#94a3b8"/>',
        f'<text x="{left - 4}" y="16" font-size="10" text-anchor="end">{for_display(top, currency):,}</text>',
        f'<text x="{left - 4}" y="{10 + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    for i, day in enumerate(days):
        y = 10 + plot_h
        for j, vendor in enumerate(vendors):
            amount = per.get((day, vendor), Decimal(0))
            if not amount:
                continue
            h = float(amount / top) * plot_h
            y -= h
            parts.append(
                f'<rect x="{left + i * bar_w + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{day} {_e(vendor)}: {_money(amount, currency)}'
                f"</title></rect>"
            )
        if i % 7 == 0 and i + 3 < len(days) or i == len(days) - 1:
            parts.append(
                f'<text x="{left + i * bar_w:.1f}" y="{height - 4}" font-size="10">{day:%m-%d}</text>'
            )
    legend = " ".join(
        f'<span style="color:{PALETTE[j % len(PALETTE)]}">■</span> {_e(v)}' for j, v in enumerate(vendors)
    )
    parts.append("</svg>")
    return "".join(parts) + f'<div class="muted">Spend per day in {_e(currency)}: {legend}</div>'


def outcome_svg(outcomes: list[dict[str, Any]], width: int = 520) -> str:
    if not outcomes:
        return '<p class="muted">No results in the last 30 days.</p>'
    out = []
    for vendor in sorted({r["vendor"] for r in outcomes}):
        rows = [r for r in outcomes if r["vendor"] == vendor]
        total = sum(r["checks"] for r in rows)
        x = 0.0
        bar = [f'<svg width="{width}" height="18" role="img" aria-label="outcome mix {_e(vendor)}">']
        legend = []
        for j, row in enumerate(rows):
            w = width * row["checks"] / total
            colour = PALETTE[j % len(PALETTE)]
            bar.append(
                f'<rect x="{x:.1f}" width="{w:.1f}" height="18" fill="{colour}">'
                f"<title>{_e(row['outcome'])}: {row['checks']}</title></rect>"
            )
            legend.append(
                f'<span class="outcome" data-outcome="{_e(row["outcome"])}"><span style="color:{colour}">■</span> '
                f"{_e(row['outcome'])} {row['checks']:,}</span>"
            )
            x += w
        bar.append("</svg>")
        # every outcome shown says what it means (the same words as docs/analysts.md)
        meanings = "".join(
            f"<dt>{_e(row['outcome'])}</dt><dd>{_e(explain(vendor, row['outcome']))}</dd>" for row in rows
        )
        out.append(
            f"<p><b>{_e(vendor)}</b> ({total:,} results)<br>{''.join(bar)}<br>{' · '.join(legend)}</p>"
            f'<dl class="outcome-help muted" data-vendor="{_e(vendor)}">{meanings}</dl>'
        )
    return "".join(out)
