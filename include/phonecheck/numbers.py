"""Offline phone-number normalisation with ``phonenumbers``: the free check before any paid one.

Numbers that cannot be valid never reach a vendor: each input line either becomes a
:class:`Normalised` number (E.164, region, calling code, line type by number range) or a
:class:`Rejected` one with a reason a user can act on. Odd input is a reason, never an
exception: control characters (NUL included), invalid Unicode (lone surrogates, which is also
how undecodable bytes of a file arrive), invisible formatting characters and letters are
rejected before ``phonenumbers`` sees the text. Letters are read as phone-keypad digits
(``1-800-FLOWERS``) only when the caller allows vanity numbers: otherwise ``+52 55 FAKE NUMB``
would become a paid check of a number nobody wrote. Only ``phonenumbers`` itself is imported
(30 ms); never its ``geocoder`` (3.5 s).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

_SPLIT_RE = re.compile(r"[\n,;\t]+")

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "no country code, and no (valid) default region given",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}

_POSSIBLE_ERRORS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country calling code",
    ValidationResult.TOO_SHORT: "too short for its country",
    ValidationResult.TOO_LONG: "too long for its country",
    ValidationResult.INVALID_LENGTH: "invalid length for its country",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short: a local number without its area code",
}


@dataclass(frozen=True)
class Normalised:
    raw: str
    e164: str  # "+5215512345678"
    region_code: str  # ISO 3166-1 alpha-2, "001" for non-geographic
    country_code: str  # calling code, "52"
    line_type: str  # phonenumbers' PhoneNumberType name, e.g. MOBILE, FIXED_LINE_OR_MOBILE

    @property
    def digits(self) -> str:
        """E.164 without the '+', the form both vendors take (``phone`` / ``phone_number``)."""
        return self.e164[1:]


@dataclass(frozen=True)
class Rejected:
    raw: str
    reason: str

    @property
    def storable_raw(self) -> str:
        """The input as text PostgreSQL and log files can hold (see :func:`storable`)."""
        return storable(self.raw)


#: Longer input is not parsed at all (E.164 numbers have at most 15 digits; room for spacing,
#: punctuation and an extension-free national prefix).
MAX_INPUT_CHARS = 64
#: How much of a rejected input is kept for inspection.
MAX_STORED_CHARS = 100


def storable(raw: str) -> str:
    """``raw`` with control, format and surrogate characters escaped (``\\x00``, ``\\udcff``)
    and cut to :data:`MAX_STORED_CHARS`: PostgreSQL text cannot hold NUL, UTF-8 cannot encode a
    lone surrogate, and a log line must not carry a terminal escape."""
    out = []
    for char in raw[:MAX_STORED_CHARS]:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    if len(raw) > MAX_STORED_CHARS:
        out.append(f"... ({len(raw)} characters)")
    return "".join(out)


def screen(text: str, allow_vanity: bool = False) -> str | None:
    """Why ``text`` cannot be a phone number before any parsing, or None when it may be one."""
    if len(text) > MAX_INPUT_CHARS:
        return f"too long to be a phone number ({len(text)} characters)"
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            code = ord(char)
            if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file (surrogateescape)
                return f"not valid UTF-8 (byte 0x{code - 0xDC00:02X}): save the file as UTF-8"
            return f"invalid Unicode (lone surrogate U+{code:04X})"
        if category == "Cc":
            return f"contains a control character (U+{ord(char):04X})"
        if category in ("Cf", "Co", "Cn"):
            return f"contains an invisible or unassigned character (U+{ord(char):04X})"
        if category.startswith("L") and not allow_vanity:
            return "contains letters (vanity numbers are off: allow_vanity reads letters as keypad digits)"
    return None


def split_input(text: str) -> list[str]:
    """Split a multi-line / comma-separated box of numbers into stripped, non-empty entries."""
    return [part.strip() for part in _SPLIT_RE.split(text or "") if part.strip()]


def _line_type_name(number: phonenumbers.PhoneNumber) -> str:
    value = phonenumbers.number_type(number)
    for name in dir(PhoneNumberType):
        if not name.startswith("_") and getattr(PhoneNumberType, name) == value:
            return name
    return "UNKNOWN"


def normalise(
    raw: str, default_region: str | None = None, allow_vanity: bool = False
) -> Normalised | Rejected:
    """Parse one number; ``default_region`` (ISO alpha-2) applies to numbers without ``+``/``00``.

    Never raises on odd text: see :func:`screen`. ``allow_vanity`` reads letters as keypad
    digits (``+1 800 FLOWERS``); off by default.

    A number written as bare digits that starts with a calling code (``5215512345678``, the form
    vendors echo back) is accepted too when it is valid that way and not valid as a national
    number of ``default_region``.
    """
    text = (raw or "").strip()
    if not text:
        return Rejected(raw, "empty")
    why = screen(text, allow_vanity)
    if why is not None:
        return Rejected(raw, why)
    region = (default_region or "").upper() or None
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        return Rejected(raw, f"unknown default region {default_region!r}")

    candidates: list[str] = [text]
    digits_only = re.sub(r"\D", "", text)
    if (
        not text.startswith("+")
        and digits_only
        and not text.startswith("00")
        and not re.search(r"[^\W\d_]", text)
    ):
        candidates.append("+" + digits_only)  # vendor style: digits with calling code

    first_error: str | None = None
    for i, candidate in enumerate(candidates):
        try:
            number = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
        except NumberParseException as exc:
            first_error = first_error or _PARSE_ERRORS.get(exc.error_type, str(exc))
            continue
        possible = phonenumbers.is_possible_number_with_reason(number)
        if possible != ValidationResult.IS_POSSIBLE:
            first_error = first_error or _POSSIBLE_ERRORS.get(possible, "not a possible number")
            continue
        if not phonenumbers.is_valid_number(number):
            if i == 0:
                first_error = "not a valid number for its region (unassigned range)"
            continue
        region_of_number = phonenumbers.region_code_for_number(number) or "001"
        return Normalised(
            raw=raw,
            e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
            region_code=region_of_number,
            country_code=str(number.country_code),
            line_type=_line_type_name(number),
        )
    return Rejected(raw, first_error or "not a valid number")


@dataclass
class NormalisedBatch:
    numbers: list[Normalised]
    rejected: list[Rejected]
    duplicates: int  # inputs that normalised to a number already in the batch

    @property
    def by_region(self) -> dict[str, list[Normalised]]:
        out: dict[str, list[Normalised]] = {}
        for n in self.numbers:
            out.setdefault(n.region_code, []).append(n)
        return out


def normalise_many(
    entries: Iterable[str], default_region: str | None = None, allow_vanity: bool = False
) -> NormalisedBatch:
    """Normalise many inputs, keeping input order and dropping duplicates (same E.164)."""
    seen: set[str] = set()
    numbers: list[Normalised] = []
    rejected: list[Rejected] = []
    duplicates = 0
    for raw in entries:
        result = normalise(raw, default_region, allow_vanity)
        if isinstance(result, Rejected):
            rejected.append(result)
        elif result.e164 in seen:
            duplicates += 1
        else:
            seen.add(result.e164)
            numbers.append(result)
    return NormalisedBatch(numbers, rejected, duplicates)


def to_e164(vendor_phone: str | None) -> str | None:
    """Best-effort E.164 for a number a vendor echoed back (digits with calling code).

    Returns None when the value cannot be a number (masked examples like ``8498****``).
    """
    if not vendor_phone:
        return None
    result = normalise(
        vendor_phone if vendor_phone.startswith("+") else "+" + re.sub(r"\D", "", vendor_phone)
    )
    return result.e164 if isinstance(result, Normalised) else None
