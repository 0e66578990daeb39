"""Money is exact until shown, then rounded once to the currency's minor unit; a spend card on
the Phone checks page adds up to the cent as shown."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from phonecheck.spend.money import for_display, format_money
from phonecheck.spend.page import PageData, render_page


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("393.8680", "USD", "393.87 USD"),
        ("0.0125", "USD", "0.01 USD"),
        ("0.005", "USD", "0.01 USD"),  # half up, not to even
        ("1234567.5", "VND", "1,234,568 VND"),  # no minor unit
        ("2.0005", "KWD", "2.001 KWD"),  # three
        (None, "USD", "–"),
    ],
)
def test_amounts_are_rounded_once_to_the_currencys_minor_unit(amount, currency, shown):
    assert format_money(None if amount is None else Decimal(amount), currency) == shown


def _card(charged: str, outstanding: str, reserved: str) -> dict:
    committed = Decimal(charged) + Decimal(outstanding) + Decimal(reserved)
    return {
        "vendor": "nxcloud", "currency": "USD", "budget": None, "committed": committed,
        "charged": Decimal(charged), "reserved": Decimal(reserved), "remaining": None, "used_pct": None,
        "runs": 3, "refused_runs": 0, "result_spend": Decimal(charged), "checks": 10,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("charged", "outstanding", "reserved"),
    [
        ("393.8640", "0.0040", "0"),  # a settled run still holds numbers without a result
        ("393.8640", "0", "0"),
        ("100.0049", "0.0049", "12.3351"),
    ],
)
def test_a_spend_card_adds_up_to_the_cent_as_shown(charged, outstanding, reserved):
    page = render_page(
        PageData(now=datetime(2026, 12, 7, tzinfo=UTC), budgets=[_card(charged, outstanding, reserved)])
    )
    card = re.search(
        r'class="spend">([\d,.]+) USD</b>.*?class="charged">([\d,.]+) USD</span> \+ held <span class="held">([\d,.]+) USD',
        page,
    )
    assert card, page
    headline, shown_charged, held = (Decimal(x.replace(",", "")) for x in card.groups())
    committed = Decimal(charged) + Decimal(outstanding) + Decimal(reserved)
    assert headline == for_display(committed, "USD")
    assert shown_charged == for_display(Decimal(charged), "USD")
    assert headline == shown_charged + held
    if outstanding == reserved == "0":
        assert headline == shown_charged and held == 0
