"""Vendor payload parsers: one place that turns every documented shape into typed rows.

Each parser returns a dict whose keys are column names of its ``telco`` table. Values are kept
as the vendor sent them (enums are validated by the quality suites, never coerced away); only
representation changes (numbers to int/Decimal, epoch seconds to datetimes, yes/no case).
Bad input raises :class:`PayloadError` with a message saying which field and why.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class PayloadError(ValueError):
    """A vendor payload that cannot be mapped; the message says which field and why."""


def require_str(payload: dict[str, Any], key: str, *alternatives: str) -> str:
    for name in (key, *alternatives):
        value = payload.get(name)
        if value is not None and str(value).strip() != "":
            return str(value)
    names = " / ".join((key, *alternatives))
    raise PayloadError(f"missing required field {names}")


def opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def opt_int(value: Any, field: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise PayloadError(f"{field}: expected an integer, got a boolean")
    try:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            return int(value)
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise PayloadError(f"{field}: expected an integer, got {value!r:.40}") from None


def opt_decimal(value: Any, field: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise PayloadError(f"{field}: expected a number, got a boolean")
    try:
        # str() first: floats from JSON keep their printed digits (0.1912, not 0.19120000000000001)
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise PayloadError(f"{field}: expected a number, got {value!r:.40}") from None
    if not number.is_finite():
        raise PayloadError(f"{field}: expected a finite number, got {value!r:.40}")
    if abs(number) >= Decimal("100000000"):  # numeric(12,4)
        raise PayloadError(f"{field}: {value!r:.40} does not fit numeric(12,4)")
    return number


def opt_text(value: Any) -> str | None:
    """A typed text column: the vendor's ``""`` (or blanks) means "not known" and becomes NULL.

    The original answer stays verbatim in the raw store; NULL never erases a known value.
    """
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def flag(value: Any) -> str | None:
    """YES/NO/UNKNOWN flags: case normalised (the 2023 callback sent lowercase), other values
    kept; ``""`` is "not known" (NULL), not a value."""
    text = opt_text(value)
    if text is None:
        return None
    return text.upper() if text.upper() in {"YES", "NO", "UNKNOWN"} else text


def epoch_seconds_to_datetime(value: int | None) -> datetime | None:
    """Epoch seconds (or milliseconds, when the number is that large) to UTC; 0 means 'never'."""
    from datetime import UTC

    if not value:
        return None
    seconds = value / 1000 if value > 100_000_000_000 else value
    return datetime.fromtimestamp(seconds, tz=UTC)
