"""The Phone checks page as a person sees it, after ``make demo`` and ``make airflow``.

The session's launcher runs on the warehouse the session's ``make demo`` filled
(``tests/fixtures/airflow.py``). Headless Chromium opens the UI, is sent to the login page, types
the approver's username and password into the form and signs in, then opens Browse → Phone
checks (``/plugin/phone-checks``, the page in an iframe). The figures it shows — the month's spend
per vendor and currency, the number of checks waiting, the last failed data-quality expectation
— must equal what SQL on the warehouse says at that moment. The demo leaves all three (its last
NXCLOUD run meets a slow, partly wrong vendor: a batch still waiting, a failed expectation), so
none of them is an empty state. No link on it answers 404 (the demo's runs live in the demo's
own Airflow: they are labelled "from make demo", not linked), and every outcome in the outcome mix
says what it means. The page is saved as docs/img/phone_checks_page.png.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import httpx
import psycopg
import pytest

from phonecheck.spend.money import format_money
from phonecheck.spend.outcomes import UNEXPLAINED, explain
from phonecheck_dev import local
from tests.fixtures.airflow import Launcher
from tests.integration.browser import Browser, chromium_binary, headless_chromium

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

DOCS_IMG = local.REPO_ROOT / "docs" / "img"

#: What the page shows, read from the iframe's document.
READ_PAGE = """(() => {
  const f = document.querySelector('iframe');
  const d = f && f.contentDocument;
  if (!d || !d.body || !d.body.innerText.includes('Receiver health')) return null;
  const failure = d.querySelector('tr.dq-failure');
  const link = failure && failure.querySelector('a[href*="/data-docs/"]');
  return {
    month: [...d.querySelectorAll('h2')].map(h => h.innerText).find(t => t.startsWith('Spend this month')),
    spend: [...d.querySelectorAll('.card[data-vendor]')].map(
      c => [c.dataset.vendor, c.dataset.currency, c.querySelector('.spend').innerText]),
    pending: d.getElementById('pending-count').innerText,
    dq: failure ? [...failure.cells].map(c => c.innerText.trim()) : null,
    docs: link ? link.getAttribute('href') : null,
    foreign: [...d.querySelectorAll('.foreign-run')].map(
      s => [s.innerText, s.nextElementSibling ? s.nextElementSibling.innerText : null]),
    outcomes: [...d.querySelectorAll('dl.outcome-help')].map(dl => ({
      vendor: dl.dataset.vendor,
      shown: [...dl.previousElementSibling.querySelectorAll('.outcome')].map(s => s.dataset.outcome),
      explained: Object.fromEntries([...dl.querySelectorAll('dt')].map(dt => [dt.innerText, dt.nextElementSibling.innerText])),
    })),
  };
})()"""

#: Every link on the page, followed as the browser would; a link to a run asks the REST API (the
#: UI's run page is a single-page app: it answers 200 and shows "not found" itself).
FOLLOW_LINKS = """(() => {
  const f = document.querySelector('iframe');
  const hrefs = [...f.contentDocument.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  return Promise.all(hrefs.map(h => {
    const run = h.match(/^\\/dags\\/([^/]+)\\/runs\\/([^/]+)$/);
    const url = run ? `/api/v2/dags/${run[1]}/dagRuns/${run[2]}` : h;
    return f.contentWindow.fetch(url, {credentials: 'include'}).then(r => [h, r.status]);
  }));
})()"""


@dataclass(frozen=True)
class Figures:
    spend: dict[tuple[date, str, str], Decimal]  # (UTC month, vendor, currency) -> committed
    pending: int  # numbers in submissions still waiting for the vendor
    last_dq_failure: tuple | None  # table, expectation, column, failing rows, run


def figures_in_the_warehouse(dsn: str) -> Figures:
    with psycopg.connect(dsn) as db:
        spend = {
            (month, vendor, currency): amount
            for month, vendor, currency, amount in db.execute(
                "SELECT month, vendor, currency, sum(amount) FROM ops.spend_ledger GROUP BY 1, 2, 3"
            )
        }
        pending = db.execute(
            "SELECT coalesce(sum(phone_count), 0) FROM ops.number_check_submission "
            "WHERE status IN ('pending', 'submitted')"
        ).fetchone()[0]
        last = db.execute(
            "SELECT table_name, expectation_type, column_name, unexpected_count, airflow_run_id "
            "FROM dq.validation_result WHERE NOT success ORDER BY validated_at DESC, result_id DESC LIMIT 1"
        ).fetchone()
    return Figures(spend, int(pending), last)


def read_the_page(browser: Browser, base_url: str, dsn: str) -> tuple[dict, Figures]:
    """The page and the warehouse at the same moment: SQL before and after the page loads must
    agree (the launcher's scheduler may be writing), else the page is loaded again."""
    for _ in range(5):
        before = figures_in_the_warehouse(dsn)
        browser.goto(f"{base_url}/plugin/phone-checks")
        shown = browser.wait_for(READ_PAGE, timeout=90)
        if figures_in_the_warehouse(dsn) == before:
            return shown, before
    raise AssertionError("the warehouse kept changing while the page loaded")


def test_the_phone_checks_page_shows_what_the_warehouse_holds_after_the_demo(make_airflow: Launcher):
    launcher = make_airflow
    binary = chromium_binary()
    assert binary, "no Chromium binary: apt-get install chromium"
    # the page needs the UI's login
    assert httpx.get(f"{launcher.base_url}/phone-checks/", timeout=30).status_code == 401

    with headless_chromium(binary) as browser:
        browser.login(launcher.base_url, "approver", launcher.passwords["approver"])
        shown, sql = read_the_page(browser, launcher.base_url, launcher.dsn)
        browser.screenshot(DOCS_IMG / "phone_checks_page.png", height=1400)

        # what the demo left: spend, something waiting, a failed expectation
        assert sql.spend and sql.pending > 0 and sql.last_dq_failure is not None, sql

        # "this month" is the page's own (its clock, not the test's): the ledger's figures of that
        # month. Only when 00:00 UTC on the 1st fell between the demo and the page is it empty.
        month = datetime.strptime(shown["month"], "Spend this month (%B %Y) vs budget").date()
        spend = {(v, c): amount for (m, v, c), amount in sql.spend.items() if m == month}
        assert spend or max(m for m, _, _ in sql.spend) < month, (month, sql.spend)
        cards = {(vendor, currency): text for vendor, currency, text in shown["spend"]}
        for (vendor, currency), amount in spend.items():
            assert cards.get((vendor, currency)) == format_money(amount, currency), (vendor, currency, cards)
        for key in set(cards) - set(spend):  # results this month but nothing in the ledger
            assert cards[key] == format_money(Decimal(0), key[1]), cards

        assert shown["pending"] == str(sql.pending), shown

        table, expectation, column, failing, run_id = sql.last_dq_failure
        # the run cell: the run id, and where it ran when this Airflow does not hold it (make demo's)
        assert shown["dq"][1:5] == [table, expectation, column or "", str(failing)], shown["dq"]
        assert shown["dq"][5] in (run_id, f"{run_id} (from make demo)"), shown["dq"]

        # its Data Docs report opens behind the same login (the demo wrote it on this host)
        assert shown["docs"], shown
        status = browser.evaluate(
            "(() => { const f = document.querySelector('iframe'); "
            f"return f.contentWindow.fetch({shown['docs']!r}).then(r => r.status); }})()"
        )
        assert status == 200, shown["docs"]

        # no link answers 404: runs of make demo's own Airflow are labelled, not linked
        followed = browser.evaluate(FOLLOW_LINKS)
        assert followed and all(code != 404 for _, code in followed), followed
        assert shown["foreign"] and all(label == "(from make demo)" for _, label in shown["foreign"]), shown

        # every outcome shown says what it means, in the words of docs/analysts.md
        assert {o["vendor"] for o in shown["outcomes"]} == {"nxcloud", "accuauth"}, shown["outcomes"]
        for mix in shown["outcomes"]:
            assert mix["shown"], mix
            for outcome in mix["shown"]:
                assert mix["explained"].get(outcome) == explain(mix["vendor"], outcome) != UNEXPLAINED, mix
