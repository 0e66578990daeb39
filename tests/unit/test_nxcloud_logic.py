"""Plain NXCLOUD logic: chunking, batch numbers, budget, rate limiter, vendor dates."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from phonecheck.nxcloud.cost import BudgetExceeded, PriceQuote, check_budget, estimate_cost
from phonecheck.nxcloud.daily import day_bounds, vendor_date_for
from phonecheck.nxcloud.planning import MAX_BATCH_NO_LENGTH, batch_no_for, label_slug, plan_chunks
from phonecheck.nxcloud.ratelimit import IntervalLimiter


def _numbers(region: str, prefix: str, n: int) -> list[tuple[str, str]]:
    return [(f"{prefix}{i:08d}", region) for i in range(n)]


def test_chunks_hold_one_country_and_at_most_the_limit():
    numbers = _numbers("MX", "5215", 12_001) + _numbers("CO", "5730", 10) + _numbers("MX", "5215", 5)  # dups
    chunks = plan_chunks(numbers, dag_id="d", run_id="r", check_level=1, label="ops team")
    assert [(c.region_code, c.size) for c in chunks] == [("CO", 10), ("MX", 5000), ("MX", 5000), ("MX", 2001)]
    assert len({c.batch_no for c in chunks}) == 4
    assert all(len(c.batch_no) <= MAX_BATCH_NO_LENGTH for c in chunks)
    assert sum(c.size for c in chunks) == 12_011  # duplicates dropped
    assert chunks[1].batch_no.startswith("ops-team-") and chunks[1].batch_no.endswith("-MX-0000")


def test_batch_numbers_are_deterministic_per_run_and_chunk():
    numbers = _numbers("MX", "5215", 7)
    a = plan_chunks(numbers, dag_id="d", run_id="r1", check_level=1, max_per_chunk=3)
    b = plan_chunks(numbers, dag_id="d", run_id="r1", check_level=1, max_per_chunk=3)
    c = plan_chunks(numbers, dag_id="d", run_id="r2", check_level=1, max_per_chunk=3)
    d = plan_chunks(numbers, dag_id="d", run_id="r1", check_level=5, max_per_chunk=3)
    assert a == b
    assert not {x.batch_no for x in a} & {x.batch_no for x in c}
    assert not {x.batch_no for x in a} & {x.batch_no for x in d}


def test_batch_no_never_exceeds_64_characters():
    long = batch_no_for(
        dag_id="x" * 300, run_id="y" * 300, check_level=5, region_code="001", index=9999, label="L" * 99
    )
    assert len(long) <= 64
    assert label_slug("  <script>!! ") == "script"
    assert label_slug("") == "check"


def test_cost_estimate_and_budget():
    quotes = {
        "MX": PriceQuote("MX", 1, Decimal("0.0040"), "USD", "recent"),
        "CO": PriceQuote("CO", 1, Decimal("0.0045"), "USD", "price_list"),
    }
    estimate = estimate_cost({"MX": 1000, "CO": 200}, quotes, 1)
    assert estimate.totals == {"USD": Decimal("4.9000")}
    check_budget(estimate, Decimal("4.90"), "USD")
    check_budget(estimate, None, "USD")
    with pytest.raises(BudgetExceeded, match=r"over budget: estimated cost 4.9000 USD .* budget 4 USD"):
        check_budget(estimate, 4, "USD")


def test_budget_refuses_to_compare_currencies():
    quotes = {"VN": PriceQuote("VN", 1, Decimal("100"), "VND", "recent")}
    with pytest.raises(BudgetExceeded, match="cannot be compared with a 1000 USD budget"):
        check_budget(estimate_cost({"VN": 3}, quotes, 1), 1000, "USD")


def test_interval_limiter_spaces_grants_across_threads():
    grants: list[float] = []  # the fake clock stands still at 0: every wait comes from the limiter
    limiter = IntervalLimiter(3.0, clock=lambda: 0.0, sleep=grants.append)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # five calls at t=0: granted at 0, 3, 6, 9, 12 -> waits 3+6+9+12 (the first one does not wait)
    assert sorted(grants) == [3.0, 6.0, 9.0, 12.0]
    assert limiter.waited_s == 30.0


def test_vendor_date_follows_the_connection_timezone():
    start = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
    assert vendor_date_for(start, ZoneInfo("UTC")) == date(2026, 11, 20)
    assert vendor_date_for(start, ZoneInfo("Asia/Shanghai")) == date(2026, 11, 21)
    lo, hi = day_bounds(date(2026, 11, 21), ZoneInfo("Asia/Shanghai"))
    assert lo == datetime(2026, 11, 20, 16, 0, tzinfo=UTC) and (hi - lo).days == 1


def test_candidate_dates_add_a_second_date_only_near_the_day_boundary():
    from datetime import UTC, date, datetime

    from phonecheck.nxcloud.client import candidate_dates

    now = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
    midday = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)  # the same day in UTC and in China
    assert candidate_dates(midday, "UTC", now=now) == [date(2026, 11, 12)]
    late = datetime(2026, 11, 11, 23, 30, tzinfo=UTC)  # already the 12th in China
    assert candidate_dates(late, "UTC", now=now) == [date(2026, 11, 11), date(2026, 11, 12)]
    assert candidate_dates(late, "Asia/Shanghai", now=now) == [date(2026, 11, 12), date(2026, 11, 11)]
    old = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)  # never before the vendor's 14 days
    assert candidate_dates(old, "UTC", now=now)[0] == date(2026, 10, 29)


@pytest.mark.parametrize(
    ("text", "permanent"),
    [
        ("Incorrect date format [yyyy-MM-dd]", True),
        ("日期格式不正确", True),
        ("参数错误：pageSize不能为空", True),
        ("Request too frequent", False),
        ("请求过于频繁", False),
        ("服务繁忙", False),
        (None, False),
    ],
)
def test_code_88_is_permanent_only_when_its_text_names_a_permanent_error(text, permanent):
    from phonecheck.nxcloud.errors import is_permanent_88

    assert is_permanent_88(text) is permanent


def test_a_run_key_names_the_dag_and_the_run_it_selects_submissions_by():
    from phonecheck.nxcloud.submissions import split_run_key

    assert split_run_key("nxcloud_number_check/manual__2026-11-27T10:00:00+00:00") == {
        "dag_id": "nxcloud_number_check",
        "run_id": "manual__2026-11-27T10:00:00+00:00",
    }
    # a dag_id has no "/": everything after the first one is the run id
    assert split_run_key("d/odd/run")["run_id"] == "odd/run"
    for bad in ("no-slash", "/run", "dag/", ""):
        with pytest.raises(ValueError, match="not a run key"):
            split_run_key(bad)
