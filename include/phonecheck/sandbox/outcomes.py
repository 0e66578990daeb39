"""Deterministic vendor outcomes of the sandbox: what NXCLOUD and AccuAuth answer for a number.

Pure functions of the phone number (no I/O, no clock, no FastAPI), so pipelines and tests can
PREDICT every row the sandbox pushes or returns. The sandbox itself calls exactly these.

Numbers are digits with the country code and no ``+`` (``5215512345670``). A number is
*well-formed* when it is 8-15 digits and starts with a country code of :data:`COUNTRIES`;
anything else gets NXCLOUD failure ``114 Invalid number format`` (like NXCLOUD result-push doc's ``18617``).

NXCLOUD number check, by the LAST digit of a well-formed number
(``live`` = HLR, checkLevel 5; ``dial`` = call version, checkLevel 4)::

    digit  outcome             numberType  live validity/reachable/roaming  dial early/answered/response
    0      answered mobile     2           YES / YES / NO                   YES / YES / bell
    1      roaming mobile      2           YES / YES / YES                  YES / NO  / music
    2      busy                2           YES / YES / NO                   YES / NO  / busy
    3      powered off         2           YES / NO  / NO                   NO  / NO  / power_off
    4      unassigned          2           NO  / NO  / NO                   NO  / NO  / invalid_number
    5      no answer           2           UNKNOWN x3                       YES / NO  / no_response
    6      fixed line          1           code 120 failure                 code 120 failure
    7      voicemail           2           YES / NO  / NO                   YES / YES / voicemail
    8      out of service      2           YES / NO  / UNKNOWN              NO  / NO  / power_off_or_out_of_service
    9      code 122 failure (all levels: "Information not detected")

checkLevel 1 (basic) succeeds for digits 0-8 (a fixed line is a basic success with numberType 1);
checkLevels 4 and 5 fail with ``120 Non-mobile number check not supported`` for fixed lines.
The carrier is ``COUNTRIES[cc].carriers[second-to-last digit % len(carriers)]``.

Prices (:func:`nxcloud_price`) are per country and check level, in the country's billing
currency (USD everywhere except Vietnam in VND, like NXCLOUD query-API doc). Failures carry no ``cost`` in the
2023 shape (NXCLOUD result-push doc) and price 0 in query rows and in the 2024 shape.

Message ids: one submit gets a 32-hex request id; a single-number batch's push reuses it, in a
multi-number batch number *i* (1-based, in submit order) gets ``<request id>-<i as 6 digits>``
(the submit document's rule, docs/vendors/nxcloud.md).

AccuAuth phone_status, by the last digit: 0 ring, 1 connected, 2 busy, 3 turned_off, 4 empty,
5 outside_service_area, 6 line_abnormal, 7 temp_unavailable, 8 ring, 9 connected.
AccuAuth pending polls, by the second-to-last digit d: ``0`` if d < 5 (the submit answers the
result at once), else ``d - 4`` (1..5 polls answered ``PENDING`` before ``OK``).

Voice receipts (NXCLOUD voice-receipt doc), by the last digit: 0, 1, 2, 5, 7, 8 are answered ("Successful
connection", NORMAL_CLEARING, send_bye, duration = 10 + last digit seconds); 3 -> USER_BUSY /
recv_refuse, 4 -> UNALLOCATED_NUMBER / send_bye, 6 -> NO_ANSWER / send_cancel, 9 -> CALL_REJECTED
/ recv_refuse, all "Unsuccessful connection" with duration 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

CHECK_LEVELS: tuple[int, ...] = (1, 4, 5)
CHECK_LEVEL_BASIC, CHECK_LEVEL_CALL, CHECK_LEVEL_HLR = 1, 4, 5

ACCUAUTH_PHONE_STATUSES: tuple[str, ...] = (
    "ring",
    "connected",
    "busy",
    "turned_off",
    "empty",
    "outside_service_area",
    "line_abnormal",
    "temp_unavailable",
)

# NXCLOUD result-push doc receipt error codes used by the sandbox.
FAILURE_MESSAGES: dict[int, str] = {
    114: "Invalid number format",
    120: "Non-mobile number check not supported",
    122: "Information not detected",
}


@dataclass(frozen=True)
class Country:
    region_code: str
    country_code: str
    currency: str
    carriers: tuple[str, ...]
    mcc: str
    prices: dict[int, Decimal]  # check level -> price per number, 4 decimal places


def _usd(basic: str, call: str, hlr: str) -> dict[int, Decimal]:
    return {1: Decimal(basic), 4: Decimal(call), 5: Decimal(hlr)}


COUNTRIES: dict[str, Country] = {
    c.country_code: c
    for c in (
        Country(
            "MX",
            "52",
            "USD",
            ("Telcel", "Movistar", "AT&T Mexico"),
            "334",
            _usd("0.0040", "0.0300", "0.0120"),
        ),
        Country("CO", "57", "USD", ("Claro", "Movistar", "Tigo"), "732", _usd("0.0045", "0.0320", "0.0130")),
        Country(
            "CN",
            "86",
            "USD",
            ("China Mobile", "China Unicom", "China Telecom"),
            "460",
            _usd("0.1912", "1.0231", "0.9230"),
        ),
        Country(
            "VN",
            "84",
            "VND",
            ("Viettel", "Vinaphone", "MobiFone"),
            "452",
            _usd("100.0000", "700.0000", "300.0000"),
        ),
        Country(
            "NG",
            "234",
            "USD",
            ("MTN Nigeria", "Airtel Nigeria", "Glo"),
            "621",
            _usd("0.0050", "0.0400", "0.0150"),
        ),
        Country("IN", "91", "USD", ("Jio", "Airtel", "Vi"), "404", _usd("0.0020", "0.0200", "0.0080")),
        Country(
            "ID",
            "62",
            "USD",
            ("Telkomsel", "Indosat", "XL Axiata"),
            "510",
            _usd("0.0035", "0.0280", "0.0110"),
        ),
        Country("PH", "63", "USD", ("Globe", "Smart", "DITO"), "515", _usd("0.0035", "0.0280", "0.0110")),
        Country("PK", "92", "USD", ("Jazz", "Zong", "Telenor"), "410", _usd("0.0030", "0.0250", "0.0100")),
        Country("BR", "55", "USD", ("Vivo", "Claro", "TIM"), "724", _usd("0.0040", "0.0300", "0.0120")),
        Country("US", "1", "USD", ("Verizon", "AT&T", "T-Mobile"), "310", _usd("0.0060", "0.0500", "0.0200")),
        Country("GB", "44", "USD", ("EE", "Vodafone UK", "O2 UK"), "234", _usd("0.0060", "0.0500", "0.0200")),
    )
}

# Per last digit: (numberType, live (validity, reachable, roaming), dial (early, answered, response)).
_NUMBER_CHECK_TABLE: dict[int, tuple[int, tuple[str, str, str], tuple[str, str, str]]] = {
    0: (2, ("YES", "YES", "NO"), ("YES", "YES", "bell")),
    1: (2, ("YES", "YES", "YES"), ("YES", "NO", "music")),
    2: (2, ("YES", "YES", "NO"), ("YES", "NO", "busy")),
    3: (2, ("YES", "NO", "NO"), ("NO", "NO", "power_off")),
    4: (2, ("NO", "NO", "NO"), ("NO", "NO", "invalid_number")),
    5: (2, ("UNKNOWN", "UNKNOWN", "UNKNOWN"), ("YES", "NO", "no_response")),
    6: (1, ("", "", ""), ("", "", "")),
    7: (2, ("YES", "NO", "NO"), ("YES", "YES", "voicemail")),
    8: (2, ("YES", "NO", "UNKNOWN"), ("NO", "NO", "power_off_or_out_of_service")),
    9: (2, ("", "", ""), ("", "", "")),  # code 122: only the basic info is known (query rows)
}

_VOICE_TABLE: dict[int, tuple[bool, str, str]] = {
    0: (True, "NORMAL_CLEARING", "send_bye"),
    1: (True, "NORMAL_CLEARING", "send_bye"),
    2: (True, "NORMAL_CLEARING", "send_bye"),
    3: (False, "USER_BUSY", "recv_refuse"),
    4: (False, "UNALLOCATED_NUMBER", "send_bye"),
    5: (True, "NORMAL_CLEARING", "send_bye"),
    6: (False, "NO_ANSWER", "send_cancel"),
    7: (True, "NORMAL_CLEARING", "send_bye"),
    8: (True, "NORMAL_CLEARING", "send_bye"),
    9: (False, "CALL_REJECTED", "recv_refuse"),
}


def country_of(phone: str) -> Country | None:
    """The country of a well-formed number (longest known country-code prefix), else None."""
    if not (phone.isascii() and phone.isdigit() and 8 <= len(phone) <= 15):
        return None
    for length in (3, 2, 1):
        country = COUNTRIES.get(phone[:length])
        if country is not None:
            return country
    return None


def nxcloud_failure_code(phone: str, check_level: int) -> int | None:
    """The NXCLOUD result-push doc failure code NXCLOUD pushes for this number, or None when it succeeds."""
    if country_of(phone) is None:
        return 114
    last = int(phone[-1])
    if last == 9:
        return 122
    if last == 6 and check_level in (CHECK_LEVEL_CALL, CHECK_LEVEL_HLR):
        return 120
    return None


def nxcloud_price(region_code: str, check_level: int) -> tuple[Decimal, str]:
    """Price of one successful check and its currency, for a region (ISO) and check level."""
    for country in COUNTRIES.values():
        if country.region_code == region_code:
            return country.prices[check_level], country.currency
    raise KeyError(f"the sandbox has no price for region {region_code!r}")


def _basic(phone: str, country: Country) -> dict[str, Any]:
    number_type = _NUMBER_CHECK_TABLE[int(phone[-1])][0]
    return {
        "preCheck": "YES",
        "regionCode": country.region_code,
        "countryCode": country.country_code,
        "nationalNumber": phone[len(country.country_code) :],
        "standNumber": phone,
        "numberType": number_type,
        "carrier": _carrier(phone, country),
    }


def _carrier(phone: str, country: Country) -> str:
    return country.carriers[int(phone[-2]) % len(country.carriers)]


def _price_number(price: Decimal) -> float:
    return float(price)


def nxcloud_result(
    phone: str, check_level: int, *, batch_no: str = "", message_id: str = ""
) -> dict[str, Any]:
    """The NXCLOUD result-push doc (2023 shape) result push for one number, field for field.

    Success: ``messageId, code 0, msg "success", batchNo, phone, data{basic[, live | dial]},
    cost{price, currency}``. Failure: ``messageId, code, msg, batchNo, phone`` only.
    """
    if check_level not in CHECK_LEVELS:
        raise ValueError(f"checkLevel must be one of {CHECK_LEVELS}, not {check_level!r}")
    code = nxcloud_failure_code(phone, check_level)
    head = {"messageId": message_id, "code": code or 0, "msg": FAILURE_MESSAGES.get(code, "success")}
    head.update({"batchNo": batch_no, "phone": phone})
    if code is not None:
        return head
    country = country_of(phone)
    assert country is not None  # a success implies a well-formed number
    _, live, dial = _NUMBER_CHECK_TABLE[int(phone[-1])]
    data: dict[str, Any] = {"basic": _basic(phone, country)}
    if check_level == CHECK_LEVEL_HLR:
        data["live"] = dict(zip(("validity", "reachable", "roaming"), live, strict=True))
    elif check_level == CHECK_LEVEL_CALL:
        data["dial"] = dict(zip(("early", "answered", "response"), dial, strict=True))
    price, currency = country.prices[check_level], country.currency
    return {**head, "data": data, "cost": {"price": _price_number(price), "currency": currency}}


def nxcloud_result_2024(
    phone: str, check_level: int, *, batch_no: str = "", request_id: str = ""
) -> dict[str, Any]:
    """The 2024 result push (docs/vendors/nxcloud.md): ``requestId``/``message``, flat ``data``.

    Success ``data`` = ``{numberType: mobile|others|invalid, operator, country}`` (+ ``mcc``,
    ``mnc``, ``ported``, ``active`` for HLR). Failure: ``data`` null, ``cost`` price 0.
    """
    if check_level not in CHECK_LEVELS:
        raise ValueError(f"checkLevel must be one of {CHECK_LEVELS}, not {check_level!r}")
    code = nxcloud_failure_code(phone, check_level)
    country = country_of(phone)
    currency = country.currency if country else "USD"
    head = {"requestId": request_id, "code": code or 0, "message": FAILURE_MESSAGES.get(code, "Success")}
    head.update({"batchNo": batch_no, "phone": phone})
    if code is not None:
        return {**head, "data": None, "cost": {"price": 0, "currency": currency}}
    assert country is not None
    number_type, live, _ = _NUMBER_CHECK_TABLE[int(phone[-1])]
    kind = "invalid" if live[0] == "NO" else ("mobile" if number_type == 2 else "others")
    data: dict[str, Any] = {
        "numberType": kind,
        "operator": _carrier(phone, country),
        "country": country.region_code,
    }
    if check_level == CHECK_LEVEL_HLR:
        data.update(
            {
                "mcc": country.mcc,
                "mnc": f"{int(phone[-2]) % len(country.carriers) + 1:02d}",
                "ported": "YES" if int(phone[-1]) == 1 else "NO",
                "active": "YES" if live[1] == "YES" else "NO",
            }
        )
    price = country.prices[check_level]
    return {**head, "data": data, "cost": {"price": _price_number(price), "currency": currency}}


def nxcloud_query_row(
    phone: str, check_level: int, *, batch_no: str = "", message_id: str = ""
) -> dict[str, Any]:
    """The NXCLOUD query-API doc query row for one number (same field names and types as the seed rows).

    Every row has the seed's 16 fields (``validity``/``reachable``/``roaming`` are ``""`` unless
    the check was HLR); call-version rows add ``early``/``answered``/``response``. A failed
    number's row has ``preCheck`` "NO" (114) or its basic info (120/122), and price 0.
    """
    push = nxcloud_result(phone, check_level, batch_no=batch_no, message_id=message_id)
    country = country_of(phone)
    basic = push.get("data", {}).get("basic")
    if basic is None:
        basic = (
            {**_basic(phone, country), "preCheck": "YES"}
            if country is not None
            else {
                "preCheck": "NO",
                "regionCode": "",
                "countryCode": "",
                "nationalNumber": "",
                "standNumber": "",
            }
        )
        basic.setdefault("numberType", 0)
        basic.setdefault("carrier", "")
    live = push.get("data", {}).get("live", {"validity": "", "reachable": "", "roaming": ""})
    cost = push.get("cost", {"price": 0, "currency": country.currency if country else "USD"})
    row: dict[str, Any] = {
        "standNumber": basic["standNumber"],
        "preCheck": basic["preCheck"],
        "batchNo": batch_no,
        "checkLevel": check_level,
        "numberType": basic["numberType"],
        "roaming": live["roaming"],
        "messageId": message_id,
        "reachable": live["reachable"],
        "regionCode": basic["regionCode"],
        "carrier": basic["carrier"],
        "phone": phone,
        "nationalNumber": basic["nationalNumber"],
        "countryCode": basic["countryCode"],
        "price": cost["price"],
        "currency": cost["currency"],
        "validity": live["validity"],
    }
    if check_level == CHECK_LEVEL_CALL:
        row.update(push.get("data", {}).get("dial", {"early": "", "answered": "", "response": ""}))
    return row


def message_id_for(request_id: str, index: int, batch_size: int) -> str:
    """The messageId of the ``index``-th (1-based) number of a batch (docs/vendors/nxcloud.md)."""
    return request_id if batch_size == 1 else f"{request_id}-{index:06d}"


def accuauth_phone_status(phone: str) -> str:
    """The ``phone_status`` AccuAuth reports for a number (last-digit table above)."""
    return ACCUAUTH_PHONE_STATUSES[int(phone[-1]) % len(ACCUAUTH_PHONE_STATUSES)]


def accuauth_pending_polls(phone: str) -> int:
    """How many ``task_result`` polls answer ``PENDING`` first (0 = result on submit)."""
    digit = int(phone[-2]) if len(phone) >= 2 else 0
    return 0 if digit < 5 else digit - 4


def voice_outcome(phone: str) -> dict[str, str]:
    """The outcome fields of a voice receipt (NXCLOUD voice-receipt doc) for a number."""
    last = int(phone[-1])
    answered, cause, disposition = _VOICE_TABLE[last]
    duration = 10 + last if answered else 0
    return {
        "duration": str(duration),
        "result": "Successful connection" if answered else "Unsuccessful connection",
        "hangup_cause": cause,
        "hangup_disposition": disposition,
    }


def voice_price(phone: str) -> str:
    """Customer unit price per 60 s cycle of a voice call to this number (string, as pushed)."""
    country = country_of(phone)
    return "0.036" if country is None or country.region_code != "MX" else "0.012"


_HANGUP_CODES = {
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "UNALLOCATED_NUMBER": 1,
    "NO_ANSWER": 19,
    "CALL_REJECTED": 21,
}


def pns_outcome(callee: str) -> dict[str, Any]:
    """The outcome part of a privacy-number call record (NXCLOUD call-record doc) for a callee number.

    Answered callees (voice table above) end normally: ``callStatus`` 1, ``hangupCause`` "" and
    ``hangupCode`` 0 like the seed, duration 6 s, the callee hangs up when the digit is odd.
    Others end abnormally: ``callStatus`` 2, duration 0, the FreeSWITCH cause and Q.850 code.
    """
    last = int(callee[-1])
    answered, cause, _ = _VOICE_TABLE[last]
    if answered:
        return {"callStatus": 1, "duration": 6, "hangupCause": "", "hangupCode": 0, "hangup": last % 2}
    return {
        "callStatus": 2,
        "duration": 0,
        "hangupCause": cause,
        "hangupCode": _HANGUP_CODES[cause],
        "hangup": 1,
    }
