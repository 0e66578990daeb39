"""The "Phone checks" operations page: figures from the warehouse, rendered as one HTML page with
inline SVG charts (no JavaScript, no internet-hosted asset). The Airflow plugin
``phonecheck_airflow.plugins.phone_checks`` serves it behind the UI's login; this module only
reads the warehouse and writes HTML. See docs/operations.md.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

DAILY_DAYS = 30


@dataclass
class PageData:
    now: datetime
    budgets: list[dict[str, Any]] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    in_doubt: int = 0
    approvals: list[dict[str, Any]] = field(default_factory=list)
    dq_failures: list[dict[str, Any]] = field(default_factory=list)
    receiver: list[dict[str, Any]] = field(default_factory=list)
    quarantined: int = 0
    spool_files: int | None = None


def _rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def load_page_data(conn: psycopg.Connection, spool_dir: Path | None = None) -> PageData:
    now = datetime.now(UTC)
    month = now.date().replace(day=1)
    data = PageData(now=now)
    # spend vs budget: the ledger's month, plus the prices of results received this month; results
    # without a currency (AccuAuth's answers carry no price, a vendor row may lack one) make no card
    data.budgets = _rows(
        conn,
        """
        WITH received AS (
            SELECT vendor, currency, sum(spend) AS result_spend, sum(checks) AS checks
            FROM mart.daily_spend WHERE day >= %(month)s AND currency IS NOT NULL GROUP BY 1, 2
        )
        SELECT COALESCE(b.vendor, r.vendor) AS vendor, COALESCE(b.currency, r.currency) AS currency,
               b.budget, COALESCE(b.committed, 0) AS committed, COALESCE(b.charged, 0) AS charged,
               COALESCE(b.reserved, 0) AS reserved, b.remaining, b.used_pct, COALESCE(b.runs, 0) AS runs,
               COALESCE(b.refused_runs, 0) AS refused_runs, r.result_spend, COALESCE(r.checks, 0) AS checks
        FROM (SELECT * FROM mart.monthly_spend_vs_budget WHERE month = %(month)s) b
        FULL JOIN received r ON r.vendor = b.vendor AND r.currency IS NOT DISTINCT FROM b.currency
        ORDER BY 1, 2
        """,
        {"month": month},
    )
    data.daily = _rows(
        conn,
        "SELECT day, vendor, currency, sum(spend) AS spend, sum(checks) AS checks FROM mart.daily_spend "
        "WHERE day > %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        (now.date() - timedelta(days=DAILY_DAYS),),
    )
    data.outcomes = _rows(
        conn,
        """
        SELECT vendor,
               CASE WHEN vendor = 'accuauth' THEN COALESCE(phone_status, accuauth_status, 'unknown')
                    WHEN NOT succeeded THEN 'vendor failure'
                    WHEN reachable = 'YES' THEN 'reachable'
                    WHEN validity = 'NO' THEN 'invalid'
                    WHEN validity = 'YES' THEN 'valid'
                    ELSE 'answered' END AS outcome,
               count(*) AS checks
        FROM mart.phone_check_result WHERE checked_at > now() - make_interval(days => %s)
        GROUP BY 1, 2 ORDER BY 1, 3 DESC
        """,
        (DAILY_DAYS,),
    )
    data.waiting = _rows(
        conn,
        """
        SELECT vendor, status, dag_id, run_id, count(*) AS submissions, sum(phone_count) AS numbers,
               min(submitted_at) AS oldest, now() - min(submitted_at) AS age
        FROM ops.number_check_submission WHERE status IN ('pending', 'submitted')
        GROUP BY 1, 2, 3, 4 ORDER BY oldest LIMIT 50
        """,
    )
    data.in_doubt = conn.execute(
        "SELECT count(*) FROM ops.accuauth_submit_claim WHERE state = 'sending'"
    ).fetchone()[0]
    data.approvals = _rows(
        conn,
        "SELECT vendor, dag_id, run_id, decision, decided_by_name, estimated, decided_at FROM ops.spend_approval "
        "ORDER BY decided_at DESC LIMIT 10",
    )
    data.dq_failures = _rows(
        conn,
        """
        SELECT validation_run_id, suite_name, table_name, expectation_type, column_name, unexpected_count,
               dag_id, airflow_run_id, validated_at
        FROM dq.validation_result WHERE NOT success ORDER BY validated_at DESC, result_id DESC LIMIT 10
        """,
    )
    data.receiver = _rows(
        conn,
        "SELECT endpoint, max(received_at) AS last_push, count(*) FILTER (WHERE received_at > now() - interval '1 day') "
        "AS last_24h FROM raw.webhook_event GROUP BY 1 ORDER BY 1",
    )
    data.quarantined = conn.execute(
        "SELECT count(*) FROM raw.webhook_event WHERE parse_status = 'error' OR process_error IS NOT NULL"
    ).fetchone()[0]
    if spool_dir is not None:  # configured but not created yet: nothing was ever spooled
        data.spool_files = sum(1 for p in spool_dir.rglob("*") if p.is_file()) if spool_dir.is_dir() else 0
    return data


# ---- rendering ---------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#1f2937;background:#fff}
h1{font-size:1.4rem;margin:0 0 4px} h2{font-size:1.1rem;margin:24px 0 8px;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;font-size:.9rem} td,th{padding:4px 10px;border-bottom:1px solid #f1f5f9;text-align:left}
th{color:#475569;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#64748b;font-size:.85rem} .bad{color:#b91c1c;font-weight:600} .ok{color:#15803d}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:220px}
.card b{font-size:1.3rem} a{color:#2563eb}
"""
PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _money(value: Any, currency: str | None) -> str:
    if value is None:
        return "–"
    return f"{Decimal(value):,.2f} {currency or ''}".strip()


def _age(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} days"


def run_link(ui_base: str, dag_id: str | None, run_id: str | None) -> str:
    if not dag_id or not run_id:
        return _e(run_id)
    href = f"{ui_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f'<a href="{_e(href)}" target="_top">{_e(run_id)}</a>'


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
        f'<text x="{left - 4}" y="16" font-size="10" text-anchor="end">{top:,.2f}</text>',
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
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{day} {_e(vendor)}: {amount:,.4f} {_e(currency)}'
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
            legend.append(f'<span style="color:{colour}">■</span> {_e(row["outcome"])} {row["checks"]:,}')
            x += w
        bar.append("</svg>")
        out.append(
            f"<p><b>{_e(vendor)}</b> ({total:,} results)<br>{''.join(bar)}<br>{' · '.join(legend)}</p>"
        )
    return "".join(out)


def data_docs_href(docs_dir: Path, suite: str, validation_run_id: str, base: str) -> str | None:
    folder = docs_dir / "validations" / suite / validation_run_id
    pages = sorted(folder.rglob("*.html")) if folder.is_dir() else []
    if not pages:
        return None
    rel = pages[0].relative_to(docs_dir).as_posix()
    return f"{base}/data-docs/{quote(rel)}"


def render_page(
    data: PageData, *, ui_base: str = "", page_base: str = "", docs_dir: Path | None = None
) -> str:
    h: list[str] = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Phone checks</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Phone checks</h1>",
        f'<div class="muted">Figures from the warehouse at {data.now:%Y-%m-%d %H:%M} UTC. '
        "Reload for fresh numbers.</div>",
        f"<h2>Spend this month ({data.now:%B %Y}) vs budget</h2>",
    ]
    if data.budgets:
        h.append('<div class="cards">')
        for b in data.budgets:
            committed = Decimal(b["committed"] or 0)
            h.append(
                f'<div class="card" data-vendor="{_e(b["vendor"])}" data-currency="{_e(b["currency"])}"><div>{_e(b["vendor"])} · {_e(b["currency"])}</div>'
                f'<b class="spend">{_money(committed, b["currency"])}</b> of '
                f"{_money(b['budget'], b['currency']) if b['budget'] is not None else 'no budget set'}<br>"
                f"{budget_bar_svg(committed, b['budget'])}"
                f'<div class="muted">charged {_money(b["charged"], b["currency"])}, held by open runs '
                f"{_money(b['reserved'], b['currency'])}; {b['runs']} run(s), {b['refused_runs']} refused over "
                f"budget; results priced this month {_money(b['result_spend'], b['currency'])} "
                f"({b['checks']:,} checks)</div></div>"
            )
        h.append("</div>")
    else:
        h.append('<p class="muted">Nothing spent or reserved this month.</p>')
    h.append("<h2>Daily spend (last 30 days)</h2>")
    h.append(daily_spend_svg(data.daily, data.now.date()))
    h.append("<h2>Outcome mix (last 30 days)</h2>")
    h.append(outcome_svg(data.outcomes))
    pending = sum(int(w["numbers"] or 0) for w in data.waiting)
    h.append(f'<h2>Checks waiting: <span id="pending-count">{pending}</span> number(s)</h2>')
    if data.waiting:
        h.append(
            "<table><tr><th>vendor</th><th>status</th><th>run</th><th>submissions</th><th>numbers</th>"
            "<th>oldest</th><th>age</th></tr>"
        )
        for w in data.waiting:
            h.append(
                f"<tr><td>{_e(w['vendor'])}</td><td>{_e(w['status'])}</td>"
                f"<td>{run_link(ui_base, w['dag_id'], w['run_id'])}</td><td class='n'>{w['submissions']}</td>"
                f"<td class='n'>{w['numbers']}</td><td>{w['oldest']:%Y-%m-%d %H:%M}</td><td>{_age(w['age'])}</td></tr>"
            )
        h.append("</table>")
    h.append(
        f'<p class="muted">AccuAuth submits whose outcome is unknown (in doubt, not resent): {data.in_doubt}</p>'
    )
    h.append("<h2>Approvals</h2>")
    if data.approvals:
        h.append(
            "<table><tr><th>when</th><th>vendor</th><th>run</th><th>decision</th><th>by</th><th>estimate</th></tr>"
        )
        for a in data.approvals:
            est = ", ".join(f"{v} {c}" for c, v in (a["estimated"] or {}).items())
            h.append(
                f"<tr><td>{a['decided_at']:%Y-%m-%d %H:%M}</td><td>{_e(a['vendor'])}</td>"
                f"<td>{run_link(ui_base, a['dag_id'], a['run_id'])}</td><td>{_e(a['decision'])}</td>"
                f"<td>{_e(a['decided_by_name'] or '–')}</td><td>{_e(est)}</td></tr>"
            )
        h.append("</table>")
    else:
        h.append('<p class="muted">No approvals yet.</p>')
    h.append("<h2>Last data-quality failures</h2>")
    if data.dq_failures:
        h.append(
            "<table><tr><th>when</th><th>table</th><th>expectation</th><th>column</th><th>failing rows</th>"
            "<th>run</th><th>Data Docs</th></tr>"
        )
        for f in data.dq_failures:
            href = (
                data_docs_href(docs_dir, f["suite_name"], f["validation_run_id"], page_base)
                if docs_dir
                else None
            )
            link = (
                f'<a href="{_e(href)}">report</a>' if href else '<span class="muted">not on this host</span>'
            )
            h.append(
                f"<tr class='dq-failure'><td>{f['validated_at']:%Y-%m-%d %H:%M}</td><td>{_e(f['table_name'])}</td>"
                f"<td class='bad'>{_e(f['expectation_type'])}</td><td>{_e(f['column_name'])}</td>"
                f"<td class='n'>{_e(f['unexpected_count'])}</td>"
                f"<td>{run_link(ui_base, f['dag_id'], f['airflow_run_id'])}</td><td>{link}</td></tr>"
            )
        h.append("</table>")
    else:
        h.append('<p class="ok">No failed expectation recorded.</p>')
    h.append("<h2>Receiver health</h2>")
    if data.receiver:
        h.append("<table><tr><th>endpoint</th><th>last push</th><th>age</th><th>pushes in 24 h</th></tr>")
        for r in data.receiver:
            h.append(
                f"<tr><td>{_e(r['endpoint'])}</td><td>{r['last_push']:%Y-%m-%d %H:%M:%S}</td>"
                f"<td>{_age(data.now - r['last_push'])}</td><td class='n'>{r['last_24h']:,}</td></tr>"
            )
        h.append("</table>")
    else:
        h.append('<p class="muted">No push received yet.</p>')
    spool = "not visible from here" if data.spool_files is None else f"{data.spool_files} file(s)"
    h.append(
        f'<p class="muted">Quarantined (unreadable or failed processing, kept in raw.webhook_event): '
        f"{data.quarantined}. Voice spool waiting for replay: {spool}.</p>"
    )
    h.append("</body></html>")
    return "\n".join(h)


def spool_dir_from_env() -> Path | None:
    configured = os.environ.get("RECEIVER_SPOOL_DIR")
    return Path(configured) if configured else None
