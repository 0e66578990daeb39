"""The vendor documents' example payloads, verbatim (the vendor documents, docs/vendors/).

Copied into the repo so tests do not depend on files outside it. The sandbox must reproduce
these shapes field for field, and the receiver and parsers must map every field of them.
"""

# ruff: noqa: E501

# NXCLOUD result-push doc: number check result pushes (JSON POST to drUrl)
NUMBER_CHECK_PUSH_BASIC = {
    "messageId": "83ac9512-3c47-495d-a3c4-6d77a9f1149c",
    "code": 0,
    "msg": "success",
    "batchNo": "700337042751",
    "phone": "234800001xxxxx",
    "data": {
        "basic": {
            "preCheck": "YES",
            "regionCode": "CN",
            "countryCode": "86",
            "nationalNumber": "800001xxxxx",
            "standNumber": "234800001xxxxx",
            "numberType": 2,
            "carrier": "China Telecom",
        }
    },
    "cost": {"price": 0.1912, "currency": "USD"},
}

NUMBER_CHECK_PUSH_HLR = {
    "messageId": "83ac9512-3c47-495d-a3c4-6d77a9f1149c",
    "code": 0,
    "msg": "success",
    "batchNo": "700337042751",
    "phone": "234800001xxxxx",
    "data": {
        "basic": {
            "preCheck": "YES",
            "regionCode": "CN",
            "countryCode": "86",
            "nationalNumber": "800001xxxxx",
            "standNumber": "234800001xxxxx",
            "numberType": 2,
            "carrier": "China Telecom",
        },
        "live": {"validity": "YES", "reachable": "UNKNOWN", "roaming": "UNKNOWN"},
    },
    "cost": {"price": 0.923, "currency": "USD"},
}

NUMBER_CHECK_PUSH_CALL = {
    "messageId": "83ac9512-3c47-495d-a3c4-6d77a9f1149c",
    "code": 0,
    "msg": "success",
    "batchNo": "700337042751",
    "phone": "234800001xxxxx",
    "data": {
        "basic": {
            "preCheck": "YES",
            "regionCode": "CN",
            "countryCode": "86",
            "nationalNumber": "800001xxxxx",
            "standNumber": "234800001xxxxx",
            "numberType": 2,
            "carrier": "China Telecom",
        },
        "dial": {"early": "NO", "answered": "NO", "response": "invalid_number"},
    },
    "cost": {"price": 1.0231, "currency": "USD"},
}

NUMBER_CHECK_PUSH_FAILURE = {
    "messageId": "cc5ef7d6-62be-42c9-abdf-b6ea9d6ed5e6",
    "code": 114,
    "msg": "Invalid number format",
    "batchNo": "700337042751",
    "phone": "18617",
}

# NXCLOUD query-API doc: number check query API
NUMBER_CHECK_QUERY_REQUEST = {"batchNo": "101713775788", "page": 1, "date": "2023-08-12", "pageSize": 100}

NUMBER_CHECK_QUERY_RESPONSE = {
    "msg": "Request successful",
    "code": 0,
    "data": {
        "result": [
            {
                "standNumber": "84****",
                "preCheck": "YES",
                "batchNo": "101713775788",
                "checkLevel": 2,
                "numberType": 2,
                "roaming": "",
                "messageId": "33f7c158a4194abe9ccdf3eac34a8422-2",
                "reachable": "",
                "regionCode": "VN",
                "carrier": "Viettel",
                "phone": "8498****",
                "nationalNumber": "98****",
                "countryCode": "84",
                "price": 0,
                "currency": "VND",
                "validity": "",
            },
            {
                "standNumber": "8498****",
                "preCheck": "YES",
                "batchNo": "101713775788",
                "checkLevel": 2,
                "numberType": 2,
                "roaming": "",
                "messageId": "33f7c158a4194abe9ccdf3eac34a8422-2",
                "reachable": "",
                "regionCode": "VN",
                "carrier": "Viettel",
                "phone": "849****",
                "nationalNumber": "98****",
                "countryCode": "84",
                "price": 0,
                "currency": "VND",
                "validity": "",
            },
        ],
        "totalSize": 2,
        "totalPage": 1,
        "pageSize": 100,
        "page": 1,
    },
}

NUMBER_CHECK_QUERY_RESPONSE_EMPTY = {
    "msg": "Request successful",
    "code": 0,
    "data": {"totalSize": 0, "result": [], "totalPage": 0, "pageSize": 100, "page": 1},
}

NUMBER_CHECK_QUERY_RESPONSE_FAILED = {"msg": "Incorrect date format [yyyy-MM-dd]", "code": 88, "data": {}}

# AccuAuth task-result doc: AccuAuth task_result/o1 answers
ACCUAUTH_TASK_PENDING = {
    "status": "PENDING",
    "reason": "check in progress",
    "request_id": "TID591cb9fb0e284cf296912a4d0ffea889",
}

ACCUAUTH_TASK_PENDING_HTTP_STATUS = 400

ACCUAUTH_TASK_OK = {
    "status": "OK",
    "result": {"phone_number": "0062********", "phone_status": "ring"},
    "request_id": "TID591cb9fb0e284cf296912a4d0ffea889",
}

ACCUAUTH_ERROR_INVALID_ARGUMENT = {
    "status": "INVALID_ARGUMENT",
    "reason": "argument 'phone_number': not found",
    "request_id": "TID0bb59f6aa6454717b870b16202ccf36f",
}

# NXCLOUD voice-receipt doc: voice receipt, the vendor's example is a URL query string (note the spaces)
VOICE_RECEIPT_QUERY_STRING = "phone=8615088888888&countryCode=86&duration=10&voice_type=0&messageid=74078a0090f17e011505297261994&basic_price=0.005&second=10&cycle=60&size=1&customer_price=0.036&start_time=2020-12-01 00:00:00&end_time=2020-12-01 00:00:10&result=Successful connection&hangup_cause=NORMAL_CLEARING&hangup_disposition=send_bye&ivr_result="

VOICE_RECEIPT_FIELDS = {
    "phone": "8615088888888",
    "countryCode": "86",
    "duration": "10",
    "voice_type": "0",
    "messageid": "74078a0090f17e011505297261994",
    "basic_price": "0.005",
    "second": "10",
    "cycle": "60",
    "size": "1",
    "customer_price": "0.036",
    "start_time": "2020-12-01 00:00:00",
    "end_time": "2020-12-01 00:00:10",
    "result": "Successful connection",
    "hangup_cause": "NORMAL_CLEARING",
    "hangup_disposition": "send_bye",
    "ivr_result": "",
}

# NXCLOUD call-record doc: privacy-number call record push (JSON POST)
CALL_RECORD_PUSH = {
    "id": 45,
    "businessId": "test_busi",
    "customerBindId": "1",
    "bindId": "69f1d1be1a82204c6049b4a2797ed0af",
    "callId": "1604763745256783872",
    "did": "85235757584",
    "caller": "85235757583",
    "callee": "85238533300",
    "callStatus": 1,
    "callStatusMsg": "",
    "duration": 6,
    "startAt": 1671440452,
    "answerAt": 1671440454,
    "hangupAt": 1671440460,
    "hangupCause": "",
    "hangupCode": 0,
    "hangup": 0,
    "recordFile": "https://remote.record.nxcloud.com/pns/20221219/228c76b1-a685-4b26-9e48-a8a1d14670d4.mp3",
}
