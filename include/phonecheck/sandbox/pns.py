"""NXCLOUD privacy-number (PNS) call records as the sandbox plays them: a simulated call
(``POST /_sandbox/pns/call``) is followed by its call-record push, retried like the vendor does."""

from __future__ import annotations

from typing import Any

from phonecheck.sandbox import outcomes
from phonecheck.sandbox.nxcloud import json_push
from phonecheck.sandbox.state import SandboxState

# PNS call records under the strict profile: the 2024 revision retries twice, 5 minutes apart.
PNS_STRICT_RETRIES = 2
PNS_STRICT_RETRY_MINUTES = 5.0


# ---- PNS call records (pushed after a simulated call: POST /_sandbox/pns/call) --------------
def push_pns_call_record(
    state: SandboxState, url: str, spec: dict[str, Any], caller: str, callee: str
) -> dict:
    """Schedule the call record of a simulated privacy-number call to ``url``; returns the record."""
    record = pns_record(state, spec, caller, callee)
    job = json_push(
        "pns_call_record",
        url,
        record,
        # strict: the 2024 PNS revision's schedule, two retries 5 minutes apart
        # (docs/receiver.md); default: every vendor minute like the other pushes
        retries=PNS_STRICT_RETRIES if state.strict else None,
        retry_interval_minutes=PNS_STRICT_RETRY_MINUTES if state.strict else 1.0,
        meta={"call_id": record["callId"], "phone": callee},
    )
    state.schedule_push(job, state.config.push_delay_s)
    return record


def pns_record(state: SandboxState, spec: dict[str, Any], caller: str, callee: str) -> dict[str, Any]:
    """The NXCLOUD call-record doc's record (``shape: "legList"``: its 2024 shape); the outcome
    is a pure function of the callee (:func:`phonecheck.sandbox.outcomes.pns_outcome`)."""
    outcome = outcomes.pns_outcome(callee)
    start = int(state.clock.now())
    answered = outcome["callStatus"] == 1
    answer_at = start + 2 if answered else 0
    hangup_at = (answer_at + outcome["duration"]) if answered else start + 5
    call_id = str(spec.get("callId") or state.rng.randrange(10**18, 10**19))
    bind_id = str(spec.get("bindId") or state.new_hex_id())
    did = str(spec.get("did", "85235757584"))
    record_file = f"https://sandbox.invalid/pns/{call_id}.mp3" if answered else ""
    if spec.get("shape") == "legList":
        legs = []
        for call_type, (leg_caller, leg_callee) in enumerate(((caller, did), (did, callee)), start=1):
            legs.append(
                {
                    "callType": call_type,
                    "caller": leg_caller,
                    "callee": leg_callee,
                    "callStartAt": start,
                    "callAnswerAt": answer_at,
                    "callFinishAt": hangup_at,
                    "duration": outcome["duration"],
                    "callRecordFile": record_file,
                    "hangupType": outcome["hangup"],
                    "hangupCause": outcome["hangupCause"],
                    "hangupCode": outcome["hangupCode"],
                    "uuid": state.new_hex_id(),
                    "ringDuration": 2 if answered else 5,
                    "fsCallStatus": outcome["callStatus"],
                    "fsCallStatusMsg": "",
                }
            )
        return {
            "bindId": bind_id,
            "customerBindId": str(spec.get("customerBindId", "1")),
            "callId": call_id,
            "caller": caller,
            "did": did,
            "didX": did,
            "didY": "",
            "extensionX": "",
            "callee": callee,
            "pnsType": "axb",
            "callStatus": str(outcome["callStatus"]),
            "callStatusMsg": "",
            "ext": str(spec.get("ext", "")),
            "legList": legs,
        }
    return {
        "id": int(spec.get("id") or state.next_seq()),
        "businessId": str(spec.get("businessId", "sandbox_busi")),
        "customerBindId": str(spec.get("customerBindId", "1")),
        "bindId": bind_id,
        "callId": call_id,
        "did": did,
        "caller": caller,
        "callee": callee,
        "callStatus": outcome["callStatus"],
        "callStatusMsg": "",
        "duration": outcome["duration"],
        "startAt": start,
        "answerAt": answer_at,
        "hangupAt": hangup_at,
        "hangupCause": outcome["hangupCause"],
        "hangupCode": outcome["hangupCode"],
        "hangup": outcome["hangup"],
        "recordFile": record_file,
    }
