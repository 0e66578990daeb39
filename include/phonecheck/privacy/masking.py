"""Masked forms of phone numbers for log lines and printed summaries.

A log line at INFO or above never carries a full number: it shows ``+52******5678`` (country
prefix and last four digits, enough to tell numbers apart while debugging) or a count.
"""

from __future__ import annotations

import re

#: A run that looks like a phone number: optional +, then at least 7 digits, possibly split by
#: spaces, dots, dashes or brackets (how people type numbers).
_NUMBER_LIKE = re.compile(r"(?<![\w+])\+?\d(?:[\s().-]{0,2}\d){6,}(?!\w)")

_STARS = "******"


def mask_number(value: object) -> str:
    """``+525512345678`` -> ``+52******5678``; short inputs keep only their last two digits.

    Accepts anything a user may have typed (spaces, dashes, a missing +); the result never
    holds more than six of the input's digits.
    """
    text = "" if value is None else str(value)
    digits = re.sub(r"\D", "", text)
    plus = "+" if text.strip().startswith("+") else ""
    if len(digits) >= 10:
        return f"{plus}{digits[:2]}{_STARS}{digits[-4:]}"
    if len(digits) >= 3:
        return f"{plus}{_STARS}{digits[-2:]}"
    return f"{plus}{_STARS}"


def mask_numbers_in_text(text: str) -> str:
    """Every number-like run inside ``text`` replaced by its masked form."""
    return _NUMBER_LIKE.sub(lambda m: mask_number(m.group(0)), text)
