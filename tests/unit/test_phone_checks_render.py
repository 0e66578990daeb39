"""What the Phone checks page says about runs, waiting batches and outcomes (rendering only; the
browser test drives the real page)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from phonecheck.spend.outcomes import OUTCOMES, UNEXPLAINED, explain
from phonecheck.spend.page import NEVER_ANSWERED, PageData, render_page

ANALYSTS_MD = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _waiting(run_id: str, state: str, numbers: int) -> dict:
    return {"vendor": "nxcloud", "status": "submitted", "state": state, "dag_id": "nxcloud_number_check",
            "run_id": run_id, "submissions": 1, "numbers": numbers, "oldest": NOW - timedelta(days=20),
            "age": timedelta(days=20)}  # fmt: skip


def test_only_runs_this_airflow_knows_are_links_the_others_say_where_they_came_from():
    data = PageData(
        now=NOW,
        waiting=[_waiting("here", "waiting for pushes", 2), _waiting("demo", "waiting for pushes", 3),
                 _waiting("elsewhere", "waiting for pushes", 4)],
        origins={"nxcloud_number_check/demo": "make demo"},
    )  # fmt: skip
    page = render_page(data, known_runs={("nxcloud_number_check", "here")})
    assert re.findall(r'<a href="([^"]+)"', page) == ["/dags/nxcloud_number_check/runs/here"]
    assert '<span class="foreign-run">demo</span> <span class="muted">(from make demo)</span>' in page
    assert (
        '<span class="foreign-run">elsewhere</span> <span class="muted">(not in this Airflow)</span>' in page
    )


def test_a_batch_past_the_push_window_and_the_query_api_is_counted_as_never_answered():
    data = PageData(
        now=NOW, waiting=[_waiting("a", "waiting for pushes", 2), _waiting("b", NEVER_ANSWERED, 5)]
    )
    page = render_page(data)
    assert '<span id="pending-count">2</span>' in page
    assert '<span id="never-answered-count">5</span> number(s): vendor never answered' in page
    assert page.count("<td class='state'>") == 2


def test_every_outcome_shown_is_explained_with_the_words_of_docs_analysts_md():
    outcomes = [{"vendor": v, "outcome": o, "checks": 3} for v in OUTCOMES for o in OUTCOMES[v]]
    page = render_page(PageData(now=NOW, outcomes=outcomes))
    docs = ANALYSTS_MD.read_text()
    for row in outcomes:
        meaning = explain(row["vendor"], row["outcome"])
        assert f"<dt>{row['outcome']}</dt><dd>{meaning}</dd>".replace("'", "&#x27;") in page
        assert f"| {row['outcome']} | {meaning} |" in docs, row
    assert explain("accuauth", "a status nobody documented") == UNEXPLAINED
