"""The common case of :func:`phonecheck.numbers.normalise`, four to ten times faster.

A bulk list is mostly plainly written numbers: ``+52 55 1234 5678``, ``5215…`` or national
digits with a default region, with spaces, dashes, dots or parentheses. For those,
``phonenumbers.parse`` + ``is_valid_number`` + ``number_type`` spend most of their time in
generic work (Unicode digit mapping, extension and IDD detection, looking up compiled patterns in
a cache on every call, classifying the number twice). This module answers the same questions
from the same metadata (``phonenumbers``' own, loaded once per calling code), with the patterns
compiled once, following the library's order of checks (``_number_type_helper``,
``_region_code_for_number_from_list``).

It only answers when it can answer exactly as the library would: a valid number with nothing
for the library to strip or rewrite. Anything else (an international or national dialling
prefix, a trunk prefix, letters, non-ASCII characters, an invalid number and its reason) returns
None and goes through ``phonenumbers`` itself. ``tests/unit/test_numbers_fast.py`` compares both
on every region's example numbers and variants of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberType

#: Plain input only: ASCII digits and the usual separators, an optional leading '+'.
_PLAIN_INTERNATIONAL = re.compile(r"\+[0-9][0-9 ()./-]*")
_PLAIN_NATIONAL = re.compile(r"[0-9(][0-9 ()./-]*")
_NOT_DIGITS = re.compile(r"\D")
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' _MIN_LENGTH_FOR_NSN / _MAX_LENGTH_FOR_NSN
_NON_GEO = "001"

#: The library's type checks, in its order (``_number_type_helper``) before fixed line / mobile.
_SPECIAL_TYPES = (
    ("premium_rate", "PREMIUM_RATE"),
    ("toll_free", "TOLL_FREE"),
    ("shared_cost", "SHARED_COST"),
    ("voip", "VOIP"),
    ("personal_number", "PERSONAL_NUMBER"),
    ("pager", "PAGER"),
    ("uan", "UAN"),
    ("voicemail", "VOICEMAIL"),
)

_Desc = tuple[frozenset[int], re.Pattern[str]]


@dataclass(frozen=True)
class _Region:
    region: str
    country_code: int
    general: _Desc | None
    special: tuple[tuple[str, _Desc], ...]
    fixed_line: _Desc | None
    mobile: _Desc | None
    same_mobile_and_fixed: bool
    leading_digits: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None  # national_prefix_for_parsing
    idd: re.Pattern[str] | None  # international_prefix
    possible: frozenset[int]  # the general description's lengths (is_possible_number)
    local_only: frozenset[int]

    def line_type(self, nsn: str) -> str | None:
        """The library's number type of ``nsn`` here, None when it is UNKNOWN (invalid)."""
        size = len(nsn)
        if not _matches(nsn, size, self.general):
            return None
        for name, (lengths, pattern) in self.special:
            if (not lengths or size in lengths) and pattern.fullmatch(nsn) is not None:
                return name
        if _matches(nsn, size, self.fixed_line):
            if self.same_mobile_and_fixed or _matches(nsn, size, self.mobile):
                return "FIXED_LINE_OR_MOBILE"
            return "FIXED_LINE"
        if not self.same_mobile_and_fixed and _matches(nsn, size, self.mobile):
            return "MOBILE"
        return None


def _matches(nsn: str, size: int, desc: _Desc | None) -> bool:
    if desc is None:
        return False
    lengths, pattern = desc
    return (not lengths or size in lengths) and pattern.fullmatch(nsn) is not None


def _desc(number_desc) -> _Desc | None:
    if number_desc is None or not number_desc.national_number_pattern:
        return None
    return frozenset(number_desc.possible_length or ()), re.compile(number_desc.national_number_pattern)


def _compile(region: str, metadata) -> _Region:
    general = metadata.general_desc
    return _Region(
        region=region,
        country_code=metadata.country_code,
        general=_desc(general),
        special=tuple(
            (name, d) for attr, name in _SPECIAL_TYPES if (d := _desc(getattr(metadata, attr))) is not None
        ),
        fixed_line=_desc(metadata.fixed_line),
        mobile=_desc(metadata.mobile),
        same_mobile_and_fixed=bool(metadata.same_mobile_and_fixed_line_pattern),
        leading_digits=re.compile(metadata.leading_digits) if metadata.leading_digits else None,
        national_prefix=(
            re.compile(metadata.national_prefix_for_parsing) if metadata.national_prefix_for_parsing else None
        ),
        idd=re.compile(metadata.international_prefix) if metadata.international_prefix else None,
        possible=frozenset(general.possible_length or ()) if general else frozenset(),
        local_only=frozenset(general.possible_length_local_only or ()) if general else frozenset(),
    )


_by_code: dict[int, tuple[_Region, ...]] = {}
_by_region: dict[str, _Region | None] = {}


def _regions_of(country_code: int) -> tuple[_Region, ...]:
    regions = _by_code.get(country_code)
    if regions is None:
        compiled = []
        for region in COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
            if region == _NON_GEO:
                metadata = PhoneMetadata.metadata_for_nongeo_region(country_code, None)
            else:
                metadata = PhoneMetadata.metadata_for_region(region, None)
            if metadata is not None:
                compiled.append(_compile(region, metadata))
        regions = _by_code[country_code] = tuple(compiled)
    return regions


def _region(region: str) -> _Region | None:
    if region not in _by_region:
        metadata = PhoneMetadata.metadata_for_region(region, None)
        _by_region[region] = _compile(region, metadata) if metadata is not None else None
    return _by_region[region]


def _country_code(digits: str) -> int | None:
    """The calling code ``digits`` start with (codes are prefix-free: the shortest that exists)."""
    if digits[0] == "0":
        return None
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return code
    return None


def fast_normalise(text: str, region: str | None) -> tuple[str, str, str, str] | None:
    """``(e164, region_code, country_code, line_type)`` of a plainly written valid number, None
    when ``phonenumbers`` must decide (see the module docstring). ``text`` is stripped, at most
    :data:`phonecheck.numbers.MAX_INPUT_CHARS` long; ``region`` upper-case or None."""
    if text[0] == "+":
        if _PLAIN_INTERNATIONAL.fullmatch(text) is None:
            return None
        digits = _NOT_DIGITS.sub("", text)
        code = _country_code(digits)
        if code is None:
            return None
        nsn = digits[len(str(code)) :]
        home = None
    else:
        if region is None or _PLAIN_NATIONAL.fullmatch(text) is None:
            return None
        home = _region(region)
        if home is None:
            return None
        nsn = _NOT_DIGITS.sub("", text)
        code = home.country_code
        if home.idd is not None and home.idd.match(nsn):
            return None  # an international dialling prefix: the library's rules decide
        if nsn.startswith(code_str := str(code)):
            nsn = _without_own_calling_code(nsn, code_str, home)
            if nsn is None:
                return None
            home = None  # the library then parses by the calling code's main region
    regions = _regions_of(code)
    if not regions or not _MIN_NSN <= len(nsn) <= _MAX_NSN:
        return None
    main = regions[0]
    parsing = home or main  # whose trunk prefix the library strips
    if parsing.national_prefix is not None and parsing.national_prefix.match(nsn):
        return None  # a trunk prefix or carrier code the library would strip or rewrite
    if len(nsn) not in main.possible or len(nsn) in main.local_only:
        return None  # not "possible": the library says why
    found: _Region | None = None
    line_type: str | None = None
    if len(regions) == 1:
        found = main
    else:
        for candidate in regions:
            if candidate.leading_digits is not None:
                if candidate.leading_digits.match(nsn):
                    found = candidate
                    break
            elif (line_type := candidate.line_type(nsn)) is not None:
                found = candidate
                break
    if found is None:
        return None
    if line_type is None:
        line_type = found.line_type(nsn)
        if line_type is None:
            return None
    return f"+{code}{nsn}", found.region, str(code), line_type


def _without_own_calling_code(digits: str, code: str, home: _Region) -> str | None:
    """National digits that start with the region's own calling code (``525512345678`` with
    default region MX, the vendors' style): the library takes the code off when the number is
    not valid with it but is without it, or is too long with it
    (``_maybe_extract_country_code``). Returns what it keeps, or None when its prefix rules
    would have a say (then the library decides)."""
    rest = digits[len(code) :]
    if home.general is None or (home.national_prefix is not None and home.national_prefix.match(rest)):
        return None
    general = home.general[1]
    size = len(digits)
    too_long = size not in home.local_only and bool(home.possible) and size > max(home.possible)
    if (general.fullmatch(digits) is None and general.fullmatch(rest) is not None) or too_long:
        return rest
    return None


#: ``PhoneNumberType`` values by name, for the slow path's line type.
LINE_TYPE_NAMES = {
    getattr(PhoneNumberType, name): name
    for name in dir(PhoneNumberType)
    if not name.startswith("_") and isinstance(getattr(PhoneNumberType, name), int)
}
