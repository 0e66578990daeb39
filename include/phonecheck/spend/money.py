"""Money for display: amounts stay exact (``Decimal`` in Python, ``numeric`` in PostgreSQL)
everywhere they are stored, summed or compared, and are rounded once, when shown, to the
currency's minor unit (ISO 4217: 2 for USD, 0 for VND and JPY, 3 for KWD), half up.

Vendors price a check in fractions of a cent (NXCLOUD: 0.0035 USD); rounding each of them, or
each partial sum, would make a total and its parts disagree by a cent. The minor units come from
Babel's copy of the CLDR currency data (already installed with Airflow's web UI).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from babel.numbers import get_currency_precision


@lru_cache(maxsize=64)
def minor_unit(currency: str | None) -> int:
    """Digits after the decimal point for ``currency`` (2 when unknown or not given)."""
    if not currency:
        return 2
    return get_currency_precision(currency.upper())


def for_display(amount: Any, currency: str | None) -> Decimal:
    """``amount`` rounded (half up) to the minor unit of ``currency``."""
    return Decimal(amount).quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def format_money(amount: Any, currency: str | None) -> str:
    """``1,234.57 USD``; ``–`` for a missing amount."""
    if amount is None:
        return "–"
    return f"{for_display(amount, currency):,} {currency or ''}".strip()
