"""What each outcome on the Phone checks page means, in the words docs/analysts.md uses
("Outcomes on the Phone checks page"; a unit test keeps the two equal).

NXCLOUD results are put in one bucket each, first match wins: ``vendor failure`` (the result
carries a failure code), ``reachable``, ``invalid``, ``valid``, else ``answered``. AccuAuth
results show their ``phone_status`` as the vendor gave it, or the task's status when it has none.
"""

from __future__ import annotations

from phonecheck.enums import ACCUAUTH_PHONE_STATUS, ACCUAUTH_STATUS

NXCLOUD_OUTCOMES = {
    "vendor failure": (
        "NXCLOUD could not check the number: the result carries a failure code (code other than 0, "
        "e.g. charging failed, no price for the country, an internal error). Failures usually carry "
        "no price; those on the vendor's side (an internal error, a busy system) are checked again by "
        "the next run."
    ),
    "reachable": "The live check found the line switched on and reachable (reachable = YES).",
    "invalid": "The number does not exist on the network (validity = NO).",
    "valid": "The number exists (validity = YES); whether it is reachable now is not known or NO.",
    "answered": (
        "NXCLOUD answered the check without a word on validity or reachability: a basic check "
        "(check level 1) reports number type, carrier and pre-check only."
    ),
}

#: AccuAuth's phone_status values (its task-result doc) and the task states shown when a
#: result has no phone_status (still pending, expired, or ended by an error status).
ACCUAUTH_OUTCOMES = {
    **{code: f"AccuAuth phone_status {code}: {text}." for code, text in ACCUAUTH_PHONE_STATUS.values.items()},
    **{
        code: f"AccuAuth task {code}, no phone status: {text}."
        for code, text in ACCUAUTH_STATUS.values.items()
        if code != "OK"
    },
    "unknown": "AccuAuth answered OK without a phone status.",
}

OUTCOMES = {"nxcloud": NXCLOUD_OUTCOMES, "accuauth": ACCUAUTH_OUTCOMES}

UNEXPLAINED = "Not documented yet: see the vendor's page in docs/vendors/."


def explain(vendor: str, outcome: str) -> str:
    """The meaning of ``outcome`` for ``vendor`` (a value no document names: say so)."""
    return OUTCOMES.get(vendor, {}).get(outcome, UNEXPLAINED)
