"""Cost estimate before any paid call, and the budget guard.

Price per number, per region and check level, in this order:

1. *recent*: the highest price NXCLOUD charged us for a successful check of that region and
   level in the last ``recent_days`` (default 30) - highest, not average, because the estimate
   guards a budget and should not under-shoot;
2. *price list*: ``ops.nxcloud_price_list`` for that region and level (operators keep their
   contract prices there);
3. *default*: the price list's ``'*'`` row for that level (seeded with NXCLOUD result-push doc's example
   prices, the highest the documents show).

Every number is counted as charged, although failed checks (NXCLOUD result-push doc failure pushes) carry no
cost: the estimate is an upper bound. Amounts stay in the vendor's currency (VND for Vietnam in
NXCLOUD query-API doc); the budget is in one currency, and an estimate in another currency is refused with a
message instead of being compared with a made-up exchange rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import psycopg

DEFAULT_RECENT_DAYS = 30
ANY_REGION = "*"


class NoPriceKnown(LookupError):
    pass


class BudgetExceeded(Exception):
    pass


@dataclass(frozen=True)
class PriceQuote:
    region_code: str
    check_level: int
    price: Decimal
    currency: str
    source: str  # recent, price_list, default


@dataclass(frozen=True)
class CostLine:
    region_code: str
    numbers: int
    quote: PriceQuote

    @property
    def amount(self) -> Decimal:
        return (self.quote.price * self.numbers).quantize(Decimal("0.0001"))


@dataclass(frozen=True)
class CostEstimate:
    check_level: int
    lines: tuple[CostLine, ...]

    @property
    def totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for line in self.lines:
            out[line.quote.currency] = out.get(line.quote.currency, Decimal(0)) + line.amount
        return out

    def describe(self) -> str:
        if not self.lines:
            return "nothing to submit: estimated cost 0"
        parts = [
            f"{line.region_code}: {line.numbers} x {line.quote.price} {line.quote.currency} ({line.quote.source})"
            for line in self.lines
        ]
        totals = ", ".join(f"{amount} {currency}" for currency, amount in sorted(self.totals.items()))
        return f"estimated cost {totals} = " + "; ".join(parts)

    def as_dict(self) -> dict:
        return {
            "check_level": self.check_level,
            "totals": {c: str(a) for c, a in self.totals.items()},
            "lines": [
                {
                    "region_code": line.region_code,
                    "numbers": line.numbers,
                    "price": str(line.quote.price),
                    "currency": line.quote.currency,
                    "source": line.quote.source,
                    "amount": str(line.amount),
                }
                for line in self.lines
            ],
        }


_RECENT_SQL = """
SELECT DISTINCT ON (region_code) region_code, currency, max_price
FROM (
    SELECT t.region_code, t.currency, max(t.price) AS max_price,
           max(COALESCE(t.pushed_at, t.queried_at, t.updated_at)) AS last_seen
    FROM telco.nxcloud_number_check t
    LEFT JOIN ops.number_check_submission s ON s.vendor = 'nxcloud' AND s.batch_no = t.batch_no
    WHERE t.region_code = ANY(%(regions)s)
      AND COALESCE(t.check_level, s.check_level) = %(level)s
      AND COALESCE(t.code, 0) = 0 AND t.price > 0 AND t.currency IS NOT NULL
      AND COALESCE(t.pushed_at, t.queried_at, t.updated_at) > now() - make_interval(days => %(days)s)
    GROUP BY t.region_code, t.currency
) per_currency
ORDER BY region_code, last_seen DESC
"""

_LIST_SQL = """
SELECT region_code, price, currency FROM ops.nxcloud_price_list
WHERE check_level = %(level)s AND region_code = ANY(%(regions)s)
"""


def quote_prices(
    conn: psycopg.Connection, regions: Sequence[str], check_level: int, recent_days: int = DEFAULT_RECENT_DAYS
) -> dict[str, PriceQuote]:
    """A price for every region in ``regions``; :class:`NoPriceKnown` names those without one."""
    regions = sorted(set(regions))
    quotes: dict[str, PriceQuote] = {}
    if not regions:
        return quotes
    params = {"regions": regions, "level": check_level, "days": recent_days}
    for region, currency, price in conn.execute(_RECENT_SQL, params):
        quotes[region] = PriceQuote(region, check_level, Decimal(price), currency, "recent")
    listed = {
        region: (Decimal(price), currency)
        for region, price, currency in conn.execute(_LIST_SQL, {**params, "regions": [*regions, ANY_REGION]})
    }
    missing = []
    for region in regions:
        if region in quotes:
            continue
        if region in listed:
            quotes[region] = PriceQuote(region, check_level, *listed[region], "price_list")
        elif ANY_REGION in listed:
            quotes[region] = PriceQuote(region, check_level, *listed[ANY_REGION], "default")
        else:
            missing.append(region)
    if missing:
        raise NoPriceKnown(
            f"no price known for region(s) {', '.join(missing)} at checkLevel {check_level}: no result in the "
            f"last {recent_days} days and no row in ops.nxcloud_price_list (add one, or a '*' default)"
        )
    return quotes


def estimate_cost(
    counts: Mapping[str, int], quotes: Mapping[str, PriceQuote], check_level: int
) -> CostEstimate:
    lines = tuple(CostLine(region, n, quotes[region]) for region, n in sorted(counts.items()) if n)
    return CostEstimate(check_level, lines)


def check_budget(estimate: CostEstimate, budget: Decimal | float | None, budget_currency: str) -> None:
    """Raise :class:`BudgetExceeded` with a clear message when the estimate may cost more."""
    if budget is None:
        return
    budget = Decimal(str(budget))
    totals = estimate.totals
    other = {c: a for c, a in totals.items() if c != budget_currency and a > 0}
    if other:
        shown = ", ".join(f"{a} {c}" for c, a in sorted(other.items()))
        raise BudgetExceeded(
            f"the estimate includes {shown}, which cannot be compared with a {budget} {budget_currency} budget: "
            f"set the budget currency to match, or split the run by country ({estimate.describe()})"
        )
    spend = totals.get(budget_currency, Decimal(0))
    if spend > budget:
        raise BudgetExceeded(
            f"over budget: {estimate.describe()}, budget {budget} {budget_currency}. Nothing was submitted; "
            f"raise the budget or check fewer numbers"
        )
