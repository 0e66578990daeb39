-- AccuAuth: a paid submit is claimed before the vendor call and settled after it, so a retried
-- submit task never pays twice for the same number in the same run.
CREATE TABLE IF NOT EXISTS ops.accuauth_submit_claim (
    run_key         text        NOT NULL,
    e164            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'sending',
    submission_id   bigint REFERENCES ops.number_check_submission (submission_id),
    vendor_status   text,
    error           text,
    attempts        integer     NOT NULL DEFAULT 1,
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_key, e164),
    CONSTRAINT accuauth_submit_claim_state_check CHECK (state IN ('sending', 'submitted', 'failed'))
);
CREATE INDEX IF NOT EXISTS accuauth_submit_claim_in_doubt_idx
    ON ops.accuauth_submit_claim (claimed_at) WHERE state = 'sending';

COMMENT ON TABLE ops.accuauth_submit_claim IS 'One row per number an AccuAuth run decided to pay for: written before the submit call, settled after it. A row left in state sending means the call''s outcome is unknown (process died mid-call): it is not resent in that run.';
COMMENT ON COLUMN ops.accuauth_submit_claim.run_key IS 'dag_id/run_id of the Airflow run that claimed the number.';
COMMENT ON COLUMN ops.accuauth_submit_claim.e164 IS 'The number claimed, E.164 with +.';
COMMENT ON COLUMN ops.accuauth_submit_claim.state IS 'sending (claimed, call in progress or outcome unknown), submitted (vendor answered; see submission_id), failed (vendor refused or the call failed for sure: may be retried).';
COMMENT ON COLUMN ops.accuauth_submit_claim.submission_id IS 'The ops.number_check_submission row recorded for the vendor answer.';
COMMENT ON COLUMN ops.accuauth_submit_claim.vendor_status IS 'Vendor status of a refused submit (INVALID_ARGUMENT, ...) or TRANSPORT/TIMEOUT.';
COMMENT ON COLUMN ops.accuauth_submit_claim.error IS 'Why the submit failed (vendor reason, never credentials).';
COMMENT ON COLUMN ops.accuauth_submit_claim.attempts IS 'How many times the number was claimed in this run (a failed claim may be retried).';
COMMENT ON COLUMN ops.accuauth_submit_claim.claimed_at IS 'When the number was first claimed.';
COMMENT ON COLUMN ops.accuauth_submit_claim.updated_at IS 'Last change to this row.';
