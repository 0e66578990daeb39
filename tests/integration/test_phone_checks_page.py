"""The Phone checks page as a person sees it, after ``make demo`` and ``make airflow``.

The session's launcher runs on the warehouse the session's ``make demo`` filled
(``tests/fixtures/airflow.py``). Headless Chromium opens the UI, is sent to the login page, types
the approver's username and password into the form and signs in, then opens Browse → Phone
checks (``/plugin/phone-checks``, the page in an iframe). The figures it shows — the month's spend
per vendor and currency, the number of checks waiting, the last failed data-quality expectation
— must equal what SQL on the warehouse says at that moment. The demo leaves all three (its last
NXCLOUD run meets a slow, partly wrong vendor: a batch still waiting, a failed expectation), so
none of them is an empty state. The page is saved as docs/img/phone_checks_page.png.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import httpx
import psycopg
import pytest

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
    spend: [...d.querySelectorAll('.card[data-vendor]')].map(
      c => [c.dataset.vendor, c.dataset.currency, c.querySelector('.spend').innerText]),
    pending: d.getElementById('pending-count').innerText,
    dq: failure ? [...failure.cells].map(c => c.innerText.trim()) : null,
    docs: link ? link.getAttribute('href') : null,
  };
})()"""


@dataclass(frozen=True)
class Figures:
    spend: dict[tuple[str, str], Decimal]  # (vendor, currency) -> committed this month
    pending: int  # numbers in submissions still waiting for the vendor
    last_dq_failure: tuple | None  # table, expectation, column, failing rows, run


def figures_in_the_warehouse(dsn: str) -> Figures:
    with psycopg.connect(dsn) as db:
        spend = {
            (vendor, currency): amount
            for vendor, currency, amount in db.execute(
                "SELECT vendor, currency, sum(amount) FROM ops.spend_ledger "
                "WHERE month = date_trunc('month', now() AT TIME ZONE 'UTC')::date GROUP BY 1, 2"
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

        cards = {(vendor, currency): text for vendor, currency, text in shown["spend"]}
        for (vendor, currency), amount in sql.spend.items():
            assert cards.get((vendor, currency)) == f"{amount:,.2f} {currency}", (vendor, currency, cards)
        for key in set(cards) - set(sql.spend):  # results this month but nothing in the ledger
            assert cards[key] == f"{Decimal(0):,.2f} {key[1]}".strip(), cards

        assert shown["pending"] == str(sql.pending), shown

        table, expectation, column, failing, run_id = sql.last_dq_failure
        assert shown["dq"][1:6] == [table, expectation, column or "", str(failing), run_id], shown["dq"]

        # its Data Docs report opens behind the same login (the demo wrote it on this host)
        assert shown["docs"], shown
        status = browser.evaluate(
            "(() => { const f = document.querySelector('iframe'); "
            f"return f.contentWindow.fetch({shown['docs']!r}).then(r => r.status); }})()"
        )
        assert status == 200, shown["docs"]
