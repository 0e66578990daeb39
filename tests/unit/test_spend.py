"""Pure functions of spend control: when to wait for approval, what the approver reads, the page."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from phonecheck.spend.approval import (
    answer_refused,
    approval_markdown,
    estimate_lines,
    floored_price,
    needs_approval,
    tightened_threshold,
    totals,
)
from phonecheck.spend.ledger import MonthPosition
from phonecheck.spend.page import PageData, budget_bar_svg, daily_spend_svg, render_page

NXCLOUD_ESTIMATE = {
    "check_level": 5,
    "totals": {"USD": "93.2000", "VND": "50000.0000"},
    "lines": [
        {"region_code": "MX", "numbers": 100, "price": "0.9230", "currency": "USD", "source": "default",
         "amount": "92.3000"},
        {"region_code": "CO", "numbers": 1, "price": "0.9000", "currency": "USD", "source": "recent",
         "amount": "0.9000"},
        {"region_code": "VN", "numbers": 10, "price": "5000", "currency": "VND", "source": "price_list",
         "amount": "50000.0000"},
    ],
}  # fmt: skip


def test_thresholds_decide_who_waits():
    usd = {"USD": Decimal("92.30")}
    assert needs_approval(usd, Decimal("100"), "USD")[0] is False
    wait, why = needs_approval(usd, Decimal("50"), "USD")
    assert wait and "92.30 USD is above the auto-approve threshold 50" in why
    assert needs_approval(usd, None, "USD")[0] is False
    # an amount in another currency cannot be compared: a person decides
    wait, why = needs_approval({"USD": Decimal(1), "VND": Decimal(50000)}, Decimal("100"), "USD")
    assert wait and "50000 VND" in why


def test_a_run_may_lower_the_configured_threshold_never_raise_it():
    configured = (Decimal("100"), "Airflow Variable phonecheck_auto_approve_nxcloud")
    assert tightened_threshold(*configured, None) == configured
    lower, why = tightened_threshold(*configured, Decimal("20"))
    assert lower == Decimal("20") and "stricter than Airflow Variable" in why
    kept, why = tightened_threshold(*configured, Decimal("2000"))
    assert kept == Decimal("100") and "the run asked for 2000" in why and "only lower" in why
    assert tightened_threshold(*configured, Decimal("100"))[0] == Decimal("100")
    # a deployment that never waits: any threshold a run asks for is stricter
    assert tightened_threshold(None, "Airflow Variable x", Decimal("5"))[0] == Decimal("5")
    assert tightened_threshold(None, "Airflow Variable x", None)[0] is None


def test_a_run_may_state_a_higher_price_than_the_contract_never_a_lower_one():
    contract = (Decimal("0.05"), "Airflow Variable phonecheck_accuauth_unit_price")
    price, why = floored_price(*contract, Decimal("0"))
    assert price == Decimal("0.05") and "unit_price 0 is lower and was not used" in why
    assert floored_price(*contract, Decimal("0.08"))[0] == Decimal("0.08")
    assert floored_price(*contract, None)[0] == Decimal("0.05")
    assert floored_price(None, "", Decimal("0.02")) == (Decimal("0.02"), "the run's unit_price")


def test_the_requester_may_not_answer_their_own_approval_unless_allowed():
    assert answer_refused("alice", "alice", self_approval_allowed=False)
    assert not answer_refused("alice", "bob", self_approval_allowed=False)
    assert not answer_refused("alice", "alice", self_approval_allowed=True)
    # the timeout default has no person; a scheduled run has no requester
    assert not answer_refused("alice", None, self_approval_allowed=False)
    assert not answer_refused(None, "bob", self_approval_allowed=False)


def test_the_approval_body_shows_the_breakdown_the_skips_and_the_month():
    lines = estimate_lines(NXCLOUD_ESTIMATE)
    assert totals(lines) == {"USD": Decimal("93.2000"), "VND": Decimal("50000.0000")}
    body = approval_markdown(
        title="NXCLOUD number check: run manual__1",
        lines=lines,
        summary={"received": 130, "rejected_offline": 12, "duplicates": 2, "skipped_fresh": 5},
        positions=[
            MonthPosition(
                "nxcloud",
                "USD",
                date(2026, 11, 1),
                Decimal("500"),
                Decimal("120"),
                Decimal("5"),
                Decimal("30"),
            ),
        ],  # fmt: skip
        threshold=Decimal("50"),
        threshold_currency="USD",
        threshold_source="Airflow Variable phonecheck_auto_approve_nxcloud",
        reason="estimate above the threshold",
        timeout_text="within 24 h",
        requested_by="alice",
    )
    assert "| MX | HLR | 100 | 0.9230 USD | default | 92.3000 USD |" in body
    assert "**Requested by:** alice, who cannot answer this approval (four eyes)" in body
    assert "| VN | HLR | 10 | 5000 VND | price_list | 50,000.0000 VND |" in body
    assert "12 rejected offline as invalid" in body and "5 skipped as fresh" in body
    assert "| nxcloud | USD | 125.0000 USD | 30.0000 USD | 500.0000 USD | 345.0000 USD |" in body
    assert "Airflow Variable phonecheck_auto_approve_nxcloud" in body


def test_accuauth_budget_statement_becomes_one_line():
    (line,) = estimate_lines({"count": 40, "estimated_cost": "2.0", "currency": "USD"})
    assert (line.numbers, line.price, line.amount) == (40, Decimal("0.05"), Decimal("2.0000"))
    assert estimate_lines({"count": 0, "estimated_cost": "0", "currency": "USD"}) == []


def test_the_page_renders_figures_and_escapes_what_it_shows():
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    data = PageData(
        now=now,
        budgets=[{"vendor": "nxcloud", "currency": "USD", "budget": Decimal("100"), "committed": Decimal("42.5"),
                  "charged": Decimal("40"), "reserved": Decimal("2.5"), "remaining": Decimal("57.5"),
                  "used_pct": Decimal("42.5"), "runs": 3, "refused_runs": 1, "result_spend": Decimal("40"),
                  "checks": 200}],
        daily=[{"day": date(2026, 11, 26), "vendor": "nxcloud", "currency": "USD", "spend": Decimal("40"),
                "checks": 200}],
        waiting=[{"vendor": "accuauth", "status": "pending", "dag_id": "accuauth_phone_check",
                  "run_id": "manual__<x>", "submissions": 2, "numbers": 7, "oldest": now - timedelta(hours=3),
                  "age": timedelta(hours=3), "state": "waiting for the answer"}],
    )  # fmt: skip
    page = render_page(data, ui_base="", page_base="/phone-checks")
    assert "42.50 USD</b> of 100.00 USD" in page
    assert '<span id="pending-count">7</span>' in page
    assert "manual__&lt;x&gt;" in page and "<x>" not in page
    assert "/dags/accuauth_phone_check/runs/manual__%3Cx%3E" in page
    assert "<script" not in page and "http" not in page.replace('href="/', "")


def test_svg_charts_scale_to_the_data():
    assert 'width="110.0"' in budget_bar_svg(Decimal(50), Decimal(100), width=220)
    assert budget_bar_svg(Decimal(50), None) == ""
    svg = daily_spend_svg(
        [
            {
                "day": date(2026, 11, 27),
                "vendor": "nxcloud",
                "currency": "USD",
                "spend": Decimal("3"),
                "checks": 1,
            }
        ],
        date(2026, 11, 27),
    )
    assert "<title>2026-11-27 nxcloud: 3.00 USD</title>" in svg  # money shown to the minor unit
