"""Every vendor enum and code list, with its meaning: the single source of truth.

Parsers, quality suites and the data dictionary all read this module. Values are kept exactly
as the vendor sends them (int codes as ``int``, flags as ``str``); columns store them as
received and the quality suites check them against these sets, so drift is reported, never
silently coerced away.

Sources: the vendor documents summarised in ``docs/vendors/`` (section in
each :class:`CodeSet`'s ``source``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CodeSet:
    """A closed set of vendor values and their meanings."""

    name: str
    values: dict[Any, str]
    source: str
    #: ``(table, column)`` pairs that hold values of this set (read by the quality suites).
    columns: tuple[tuple[str, str], ...] = field(default=())
    #: Whether NULL is acceptable in those columns (field absent in some shapes).
    nullable: bool = True

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def meaning(self, value: object) -> str | None:
        return self.values.get(value)

    @property
    def allowed(self) -> list[Any]:
        return list(self.values)


NUMBER_CHECK = "telco.nxcloud_number_check"
ACCUAUTH = "telco.accuauth_phone_check"
VOICE = "telco.nxcloud_voice_receipt"
CALL = "telco.nxcloud_call_record"

# --- NXCLOUD number check --------------------------------------------------------------------

NXCLOUD_RECEIPT_CODE = CodeSet(
    "nxcloud_receipt_code",
    {
        0: "Success",
        103: "Internal server error",
        108: "Invalid value in the request",
        112: "Backend service call failed",
        114: "Invalid number format",
        120: "Non-mobile number check not supported",
        121: "Unknown error",
        122: "Information not detected",
        266: "subBalance failed (balance deduction; 2024 callback shape)",
    },
    "NXCLOUD result-push doc receipt error codes; 266 from docs/vendors/nxcloud.md",
    columns=((NUMBER_CHECK, "code"),),
)

#: Receipt codes worth checking again (the vendor's side failed, not the number): a number with
#: such a result is not "fresh". Every other failure (108, 114, 120, 122) is a definitive answer.
NXCLOUD_TRANSIENT_RECEIPT_CODES = frozenset({103, 112, 121, 266})

NXCLOUD_QUERY_CODE = CodeSet(
    "nxcloud_query_code",
    {
        0: "Success",
        88: "Request failed with specific failure reason",
        202: "Application not available or incorrect appkey",
        210: "Customer of the auth mechanism differs from the appkey's customer",
    },
    "NXCLOUD query-API doc error codes",
)

NXCLOUD_SUBMIT_CODE = CodeSet(
    "nxcloud_submit_code",
    {
        0: "ok",
        201: "parameter missing or invalid",
        202: "app unavailable or wrong appkey",
        203: "country/operator not recognised",
        204: "charging (deduction) failure",
        205: "no price configured for the app",
        206: "internal check-service call failed",
        207: "invalid checkLevel",
        210: "appkey belongs to a different customer than the accessKey",
        211: "insufficient balance",
        212: "batchNo longer than 64",
        288: "request failed",
        299: "system error",
    },
    "docs/vendors/nxcloud.md",
)

NXCLOUD_AUTH_CODE = CodeSet(
    "nxcloud_auth_code",
    {
        1001: "a required common header is missing",
        1002: "bad bizType/action header, or bad body parameters",
        1003: "signature mismatch",
        1004: "ts outside the ±60 s window (or not in ms)",
        1005: "wrong accessKey or account lacks permission for this business",
    },
    "docs/vendors/nxcloud.md",
)

NXCLOUD_CHECK_LEVEL = CodeSet(
    "nxcloud_check_level",
    {
        1: "basic",
        2: "undocumented; seen in NXCLOUD query-API doc example rows, kept as received (docs/vendors/nxcloud.md: the merge rule)",
        4: "call check",
        5: "HLR",
    },
    "NXCLOUD query-API doc checkLevel; docs/vendors/nxcloud.md",
    columns=((NUMBER_CHECK, "check_level"),),
)

#: checkLevel values a user can ask for (the params form); 2 is never submitted.
SUBMITTABLE_CHECK_LEVELS = {"basic": 1, "call": 4, "hlr": 5}

NXCLOUD_NUMBER_TYPE = CodeSet(
    "nxcloud_number_type",
    {
        "0": "Other types",
        "1": "Fixed-line number",
        "2": "Mobile number",
        "3": "Toll-free number",
        "4": "VOIP number",
        "5": "Organization/Enterprise number",
        "6": "Special private number",
        "7": "Voicemail",
        "8": "Special restricted number",
        "mobile": "Mobile number (2024 shape)",
        "others": "Other types (2024 shape)",
        "invalid": "Invalid number (2024 shape)",
    },
    "NXCLOUD result-push doc basic.numberType (int, stored as text); docs/vendors/nxcloud.md (2024 strings)",
    columns=((NUMBER_CHECK, "number_type"),),
)

NXCLOUD_YES_NO = CodeSet(
    "nxcloud_pre_check",
    {"YES": "passed", "NO": "not passed"},
    "NXCLOUD result-push doc basic.preCheck",
    columns=((NUMBER_CHECK, "pre_check"),),
)

NXCLOUD_TRISTATE = CodeSet(
    "nxcloud_yes_no_unknown",
    {
        "YES": "yes",
        "NO": "no",
        "UNKNOWN": "unknown",
        "": "empty string (seen in NXCLOUD query-API doc query rows)",
    },
    "NXCLOUD result-push doc live.* and dial.early/answered; NXCLOUD query-API doc example rows; 2024 ported/active (case normalised)",
    columns=(
        (NUMBER_CHECK, "validity"),
        (NUMBER_CHECK, "reachable"),
        (NUMBER_CHECK, "roaming"),
        (NUMBER_CHECK, "early"),
        (NUMBER_CHECK, "answered"),
        (NUMBER_CHECK, "ported"),
        (NUMBER_CHECK, "active"),
    ),
)

NXCLOUD_DIAL_RESPONSE = CodeSet(
    "nxcloud_dial_response",
    {
        "bell": "Ringing",
        "music": "Ringback tone",
        "busy": "User busy",
        "no_response": "No response from user",
        "invalid_number": "Invalid number",
        "not_available": "Number not available",
        "number_paused": "Number paused",
        "power_off": "Power off",
        "power_off_or_out_of_service": "Power off or out of service area",
        "voicemail": "Voicemail",
        "others": "Temporarily unable to connect",
        "": "empty string: query rows of call checks that produced no dial result (as NXCLOUD query-API doc shows for live.*)",
    },
    "NXCLOUD result-push doc dial.response; empty string by analogy with NXCLOUD query-API doc query rows",
    columns=((NUMBER_CHECK, "response"),),
)

# --- AccuAuth ----------------------------------------------------------------------------------

ACCUAUTH_PHONE_STATUS = CodeSet(
    "accuauth_phone_status",
    {
        "ring": "The phone is on and rings",
        "connected": "User connected the phone",
        "empty": "The phone number is empty (unassigned)",
        "busy": "The phone is busy now",
        "turned_off": "The phone is turned off",
        "outside_service_area": "The phone is not in the service area",
        "line_abnormal": "Line abnormality, try again later",
        "temp_unavailable": "Temporarily unreachable, try again later",
    },
    "AccuAuth task-result doc phone_status",
    columns=((ACCUAUTH, "phone_status"),),
)

#: HTTP status the vendor pairs with each ``status`` value (AccuAuth task-result doc error table).
ACCUAUTH_STATUS_HTTP = {
    "OK": 200,
    "PENDING": 400,
    "INVALID_ARGUMENT": 400,
    "UNAUTHORIZED": 401,
    "KEY_EXPIRED": 401,
    "NO_PERMISSION": 403,
    "OUT_OF_QUOTA": 403,
    "RATE_LIMIT_EXCEEDED": 403,
    "NOT_FOUND": 404,
    "INTERNAL_ERROR": 500,
}

ACCUAUTH_STATUS = CodeSet(
    "accuauth_status",
    {
        "OK": "request succeeded",
        "PENDING": "check in progress (HTTP 400, not an error)",
        "INVALID_ARGUMENT": "request parameter is invalid",
        "UNAUTHORIZED": "unauthorized or access denied",
        "KEY_EXPIRED": "API id has expired",
        "NO_PERMISSION": "not authorized to use this API",
        "OUT_OF_QUOTA": "API calls quota exceeded",
        "RATE_LIMIT_EXCEEDED": "request frequency exceeds the limit",
        "NOT_FOUND": "requested API (or task) cannot be found",
        "INTERNAL_ERROR": "internal server error",
        "EXPIRED": "ours: the task id passed its 24 h validity without a result",
    },
    "AccuAuth task-result doc error codes; EXPIRED is this project's own status",
    columns=((ACCUAUTH, "status"),),
    nullable=False,
)

# --- NXCLOUD voice receipts (NXCLOUD voice-receipt doc) ---------------------------------------------------------

VOICE_TYPE = CodeSet(
    "nxcloud_voice_type",
    {"0": "group call", "1": "verification/notification"},
    "NXCLOUD voice-receipt doc voice_type (DR numbering; the record query API numbers differently, docs/vendors/nxcloud.md)",
    columns=((VOICE, "voice_type"),),
)

VOICE_RESULT = CodeSet(
    "nxcloud_voice_result",
    {
        "Successful connection": "the call connected",
        "Unsuccessful connection": "the call did not connect",
        "成功接通": "the call connected (Chinese accounts)",
        "未接通": "the call did not connect (Chinese accounts)",
    },
    "NXCLOUD voice-receipt doc result; docs/vendors/nxcloud.md",
    columns=((VOICE, "result"),),
)

VOICE_HANGUP_DISPOSITION = CodeSet(
    "nxcloud_hangup_disposition",
    {
        "send_cancel": "caller timed out / cancelled",
        "recv_refuse": "callee refused",
        "recv_bye": "callee hung up",
        "send_bye": "caller (platform) hung up",
        "other": "other",
        "recv_cancel": "FreeSWITCH value, not in the vendor doc",
        "send_refuse": "FreeSWITCH value, not in the vendor doc",
    },
    "NXCLOUD voice-receipt doc hangup_disposition; docs/vendors/nxcloud.md",
    columns=((VOICE, "hangup_disposition"),),
)

#: Hang-up causes: Q.850 code -> FreeSWITCH name (docs/vendors/nxcloud.md).
HANGUP_CAUSE_BY_CODE: dict[int, str] = {
    0: "UNSPECIFIED",
    1: "UNALLOCATED_NUMBER",
    2: "NO_ROUTE_TRANSIT_NET",
    3: "NO_ROUTE_DESTINATION",
    6: "CHANNEL_UNACCEPTABLE",
    7: "CALL_AWARDED_DELIVERED",
    16: "NORMAL_CLEARING",
    17: "USER_BUSY",
    18: "NO_USER_RESPONSE",
    19: "NO_ANSWER",
    20: "SUBSCRIBER_ABSENT",
    21: "CALL_REJECTED",
    22: "NUMBER_CHANGED",
    23: "REDIRECTION_TO_NEW_DESTINATION",
    25: "EXCHANGE_ROUTING_ERROR",
    27: "DESTINATION_OUT_OF_ORDER",
    28: "INVALID_NUMBER_FORMAT",
    29: "FACILITY_REJECTED",
    30: "RESPONSE_TO_STATUS_ENQUIRY",
    31: "NORMAL_UNSPECIFIED",
    34: "NORMAL_CIRCUIT_CONGESTION",
    38: "NETWORK_OUT_OF_ORDER",
    41: "NORMAL_TEMPORARY_FAILURE",
    42: "SWITCH_CONGESTION",
    43: "ACCESS_INFO_DISCARDED",
    44: "REQUESTED_CHAN_UNAVAIL",
    45: "PRE_EMPTED",
    47: "",  # resource unavailable, unspecified: no enum name
    50: "FACILITY_NOT_SUBSCRIBED",
    52: "OUTGOING_CALL_BARRED",
    54: "INCOMING_CALL_BARRED",
    57: "BEARERCAPABILITY_NOTAUTH",
    58: "BEARERCAPABILITY_NOTAVAIL",
    63: "SERVICE_UNAVAILABLE",
    65: "BEARERCAPABILITY_NOTIMPL",
    66: "CHAN_NOT_IMPLEMENTED",
    69: "FACILITY_NOT_IMPLEMENTED",
    79: "SERVICE_NOT_IMPLEMENTED",
    81: "INVALID_CALL_REFERENCE",
    88: "INCOMPATIBLE_DESTINATION",
    95: "INVALID_MSG_UNSPECIFIED",
    96: "MANDATORY_IE_MISSING",
    97: "MESSAGE_TYPE_NONEXIST",
    98: "WRONG_MESSAGE",
    99: "IE_NONEXIST",
    100: "INVALID_IE_CONTENTS",
    101: "WRONG_CALL_STATE",
    102: "RECOVERY_ON_TIMER_EXPIRE",
    103: "MANDATORY_IE_LENGTH_ERROR",
    111: "PROTOCOL_ERROR",
    127: "INTERWORKING",
    487: "ORIGINATOR_CANCEL",
    500: "CRASH",
    501: "SYSTEM_SHUTDOWN",
    502: "LOSE_RACE",
    503: "MANAGER_REQUEST",
    600: "BLIND_TRANSFER",
    601: "ATTENDED_TRANSFER",
    602: "ALLOTTED_TIMEOUT",
    603: "USER_CHALLENGE",
    604: "MEDIA_TIMEOUT",
    605: "PICKED_OFF",
    606: "USER_NOT_REGISTERED",
    607: "PROGRESS_TIMEOUT",
    609: "GATEWAY_DOWN",
}

HANGUP_CAUSE = CodeSet(
    "hangup_cause",
    {name: f"Q.850/FreeSWITCH cause {code}" for code, name in HANGUP_CAUSE_BY_CODE.items() if name}
    | {"": "empty (normal call in the PNS example)"},
    "docs/vendors/nxcloud.md",
    columns=((VOICE, "hangup_cause"), (CALL, "hangup_cause")),
)

HANGUP_CODE = CodeSet(
    "hangup_code",
    {code: (name or "resource unavailable, unspecified") for code, name in HANGUP_CAUSE_BY_CODE.items()},
    "docs/vendors/nxcloud.md (0 = none, as in the PNS example)",
    columns=((CALL, "hangup_code"),),
)

# --- NXCLOUD PNS call records (NXCLOUD call-record doc) -------------------------------------------------------

PNS_CALL_STATUS = CodeSet(
    "pns_call_status",
    {"0": "Unknown", "1": "Normal end", "2": "Abnormal end"},
    "NXCLOUD call-record doc callStatus (int in the seed, string in the 2024 shape; stored as text)",
    columns=((CALL, "call_status"),),
)

PNS_HANGUP_PARTY = CodeSet(
    "pns_hangup",
    {0: "Caller hung up", 1: "Callee hung up"},
    "NXCLOUD call-record doc hangup (2024 legList hangupType assumed to mirror it, docs/vendors/nxcloud.md)",
    columns=((CALL, "hangup"),),
)

# --- Sources (our own bookkeeping enums) -------------------------------------------------------

ROW_SOURCE = CodeSet(
    "row_source",
    {
        "push": "vendor push",
        "query": "NXCLOUD query API",
        "submit": "AccuAuth submit answer",
        "poll": "AccuAuth task_result poll",
        "callback": "AccuAuth callback",
        "expiry": "our 24 h expiry",
    },
    "this project's own values",
    columns=((NUMBER_CHECK, "source"), (ACCUAUTH, "source"), (VOICE, "source"), (CALL, "source")),
    nullable=False,
)


def iso_currency_codes() -> frozenset[str]:
    """ISO 4217 currency codes (babel's CLDR list, which ships in the lock with Airflow)."""
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


def iso_region_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 region codes known to libphonenumber (plus ``001`` non-geographic)."""
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


#: Every code set, for the quality suites and the data dictionary.
ALL_CODE_SETS: tuple[CodeSet, ...] = (
    NXCLOUD_RECEIPT_CODE,
    NXCLOUD_QUERY_CODE,
    NXCLOUD_SUBMIT_CODE,
    NXCLOUD_AUTH_CODE,
    NXCLOUD_CHECK_LEVEL,
    NXCLOUD_NUMBER_TYPE,
    NXCLOUD_YES_NO,
    NXCLOUD_TRISTATE,
    NXCLOUD_DIAL_RESPONSE,
    ACCUAUTH_PHONE_STATUS,
    ACCUAUTH_STATUS,
    VOICE_TYPE,
    VOICE_RESULT,
    VOICE_HANGUP_DISPOSITION,
    HANGUP_CAUSE,
    HANGUP_CODE,
    PNS_CALL_STATUS,
    PNS_HANGUP_PARTY,
    ROW_SOURCE,
)
