"""The "Phone checks" operations page: figures from the warehouse, rendered as one HTML page with
inline SVG charts (no JavaScript, no internet-hosted asset). The Airflow plugin
``phonecheck_airflow.plugins.phone_checks`` serves it behind the UI's login; this module only
reads the warehouse and writes HTML. See docs/operations.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from phonecheck.spend.charts import DAILY_DAYS, _e, budget_bar_svg, daily_spend_svg, outcome_svg
from phonecheck.spend.money import for_display, format_money


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
    query_pages: list[dict[str, Any]] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)  # run key -> where it ran (ops.run_origin)

    def run_pairs(self) -> set[tuple[str, str]]:
        """The (dag_id, run_id) of every run the page names."""
        return {
            (r["dag_id"], r["run_id"])
            for r in self.waiting + self.approvals + self.dq_failures + self.query_pages
            if r["dag_id"]
        }


#: The state of a waiting submission. NXCLOUD pushes results within minutes and retries a push
#: for up to 60 minutes; its query API lists a batch for 14 days (docs/vendors/nxcloud.md); one
#: more day because the vendor's "date" may be in another time zone. An AccuAuth task id answers
#: for 24 hours (docs/vendors/accuauth.md). Past both, nothing will ever arrive.
NEVER_ANSWERED = "vendor never answered"
WAITING_LIMITS = {"push_window": timedelta(minutes=65), "query_window": timedelta(days=15),
                  "task_ttl": timedelta(hours=24)}  # fmt: skip
WAITING_SQL = """
SELECT vendor, status, state, dag_id, run_id, count(*) AS submissions, sum(phone_count) AS numbers,
       min(submitted_at) AS oldest, now() - min(submitted_at) AS age
FROM (
    SELECT *, CASE
        WHEN vendor = 'nxcloud' AND submitted_at > now() - %(push_window)s THEN 'waiting for pushes'
        WHEN vendor = 'nxcloud' AND submitted_at > now() - %(query_window)s
            THEN 'pushes overdue: the query API can still list it'
        WHEN vendor = 'accuauth' AND submitted_at > now() - %(task_ttl)s THEN 'waiting for the answer'
        ELSE %(never)s END AS state
    FROM ops.number_check_submission WHERE status IN ('pending', 'submitted')
) s
GROUP BY 1, 2, 3, 4, 5 ORDER BY oldest LIMIT 50
"""


def _rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def load_page_data(
    conn: psycopg.Connection, spool_dir: Path | None = None, now: datetime | None = None
) -> PageData:
    """``now``: the page's clock (default: the current time); "this month" is its UTC month."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    month = now.date().replace(day=1)
    data = PageData(now=now)
    # spend vs budget: the ledger's month, plus the prices of results received this month (AccuAuth:
    # its contract unit price per check, see mart.phone_check_result); results without a currency
    # make no card
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
    data.waiting = _rows(conn, WAITING_SQL, {**WAITING_LIMITS, "never": NEVER_ANSWERED})
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
               dag_id, airflow_run_id, airflow_run_id AS run_id, validated_at
        FROM dq.validation_result WHERE NOT success ORDER BY validated_at DESC, result_id DESC LIMIT 10
        """,
    )
    data.receiver = _rows(
        conn,
        "SELECT endpoint, max(received_at) AS last_push, count(*) FILTER (WHERE received_at > now() - interval '1 day') "
        "AS last_24h FROM raw.webhook_event GROUP BY 1 ORDER BY 1",
    )
    # the NXCLOUD query API is the fallback for numbers the pushes did not bring: every page it
    # answered is kept in raw.vendor_answer with the run that asked, so its cost per run shows here
    data.query_pages = _rows(
        conn,
        """
        SELECT dag_id, run_id, count(*) AS pages, max(received_at) AS last_at
        FROM raw.vendor_answer
        WHERE vendor = 'nxcloud' AND api = 'number_check_query' AND received_at > now() - interval '1 day'
        GROUP BY 1, 2 ORDER BY last_at DESC LIMIT 20
        """,
    )
    data.quarantined = conn.execute(
        "SELECT count(*) FROM raw.webhook_event WHERE parse_status = 'error' OR process_error IS NOT NULL"
    ).fetchone()[0]
    run_ids = sorted({run_id for _, run_id in data.run_pairs()})
    data.origins = {
        f"{dag_id}/{run_id}": origin
        for dag_id, run_id, origin in conn.execute(
            "SELECT dag_id, run_id, origin FROM ops.run_origin WHERE run_id = ANY(%s)", (run_ids,)
        )
    }
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


_money = format_money  # exact amounts in, rounded once to the currency's minor unit for display


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


def data_docs_href(docs_dir: Path, suite: str, validation_run_id: str, base: str) -> str | None:
    folder = docs_dir / "validations" / suite / validation_run_id
    pages = sorted(folder.rglob("*.html")) if folder.is_dir() else []
    if not pages:
        return None
    rel = pages[0].relative_to(docs_dir).as_posix()
    return f"{base}/data-docs/{quote(rel)}"


def render_page(
    data: PageData,
    *,
    ui_base: str = "",
    page_base: str = "",
    docs_dir: Path | None = None,
    known_runs: set[tuple[str, str]] | None = None,
) -> str:
    """The page. ``known_runs``: the (dag_id, run_id) pairs this Airflow holds; other runs are
    shown unlinked, labelled with where they came from (None: link every run)."""

    def runs(dag_id: str | None, run_id: str | None) -> str:
        if known_runs is None or (dag_id, run_id) in known_runs or not dag_id or not run_id:
            return run_link(ui_base, dag_id, run_id)
        origin = data.origins.get(f"{dag_id}/{run_id}")
        where = f"from {origin}" if origin else "not in this Airflow"
        return f'<span class="foreign-run">{_e(run_id)}</span> <span class="muted">({_e(where)})</span>'

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
            # the card adds up as shown: held = the headline minus the charges, both rounded once
            held = for_display(committed, b["currency"]) - for_display(b["charged"] or 0, b["currency"])
            h.append(
                f'<div class="card" data-vendor="{_e(b["vendor"])}" data-currency="{_e(b["currency"])}"><div>{_e(b["vendor"])} · {_e(b["currency"])}</div>'
                f'<b class="spend">{_money(committed, b["currency"])}</b> of '
                f"{_money(b['budget'], b['currency']) if b['budget'] is not None else 'no budget set'}<br>"
                f"{budget_bar_svg(committed, b['budget'])}"
                f'<div class="muted">charged <span class="charged">{_money(b["charged"] or 0, b["currency"])}</span>'
                f' + held <span class="held">{_money(held, b["currency"])}</span> (runs still open, numbers '
                f"still without a result); {b['runs']} run(s), {b['refused_runs']} refused over "
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
    pending = sum(int(w["numbers"] or 0) for w in data.waiting if w["state"] != NEVER_ANSWERED)
    silent = sum(int(w["numbers"] or 0) for w in data.waiting if w["state"] == NEVER_ANSWERED)
    h.append(f'<h2>Checks waiting: <span id="pending-count">{pending}</span> number(s)</h2>')
    if silent:
        h.append(
            f'<p class="bad"><span id="never-answered-count">{silent}</span> number(s): {NEVER_ANSWERED}, '
            "the push window and the query API have both passed (docs/operations.md says what to do).</p>"
        )
    if data.waiting:
        h.append(
            "<table><tr><th>vendor</th><th>status</th><th>state</th><th>run</th><th>submissions</th>"
            "<th>numbers</th><th>oldest</th><th>age</th></tr>"
        )
        for w in data.waiting:
            h.append(
                f"<tr class='waiting'><td>{_e(w['vendor'])}</td><td>{_e(w['status'])}</td>"
                f"<td class='state'>{_e(w['state'])}</td><td>{runs(w['dag_id'], w['run_id'])}</td>"
                f"<td class='n'>{w['submissions']}</td><td class='n'>{w['numbers']}</td>"
                f"<td>{w['oldest']:%Y-%m-%d %H:%M}</td><td>{_age(w['age'])}</td></tr>"
            )
        h.append("</table>")
    h.append(
        f'<p class="muted">AccuAuth submits whose outcome is unknown (in doubt, not resent): {data.in_doubt}</p>'
    )
    h.append("<h2>NXCLOUD query API (last 24 h)</h2>")
    if data.query_pages:
        h.append("<table><tr><th>run</th><th>pages read for numbers without a push</th><th>last</th></tr>")
        for q in data.query_pages:
            h.append(
                f"<tr><td>{runs(q['dag_id'], q['run_id'])}</td><td class='n'>{q['pages']:,}</td>"
                f"<td>{q['last_at']:%Y-%m-%d %H:%M}</td></tr>"
            )
        h.append("</table>")
    else:
        h.append('<p class="ok">No query call: every result came from its push.</p>')
    h.append("<h2>Approvals</h2>")
    if data.approvals:
        h.append(
            "<table><tr><th>when</th><th>vendor</th><th>run</th><th>decision</th><th>by</th><th>estimate</th></tr>"
        )
        for a in data.approvals:
            est = ", ".join(f"{v} {c}" for c, v in (a["estimated"] or {}).items())
            h.append(
                f"<tr><td>{a['decided_at']:%Y-%m-%d %H:%M}</td><td>{_e(a['vendor'])}</td>"
                f"<td>{runs(a['dag_id'], a['run_id'])}</td><td>{_e(a['decision'])}</td>"
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
                f"<td>{runs(f['dag_id'], f['airflow_run_id'])}</td><td>{link}</td></tr>"
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
