-- AccuAuth: a submit whose answer was lost is "in doubt" (never resent in its run; settled by the
-- vendor's callback matched on the number we sent); every submit and poll answer is kept verbatim
-- in raw.vendor_answer and linked from the typed rows; the number the vendor echoes is kept as
-- received, apart from the number we sent. See docs/vendors/accuauth.md.

ALTER TABLE ops.accuauth_submit_claim DROP CONSTRAINT IF EXISTS accuauth_submit_claim_state_check;
ALTER TABLE ops.accuauth_submit_claim ADD CONSTRAINT accuauth_submit_claim_state_check
    CHECK (state IN ('sending', 'submitted', 'failed', 'in_doubt'));
ALTER TABLE ops.accuauth_submit_claim ADD COLUMN IF NOT EXISTS dag_id text;
ALTER TABLE ops.accuauth_submit_claim ADD COLUMN IF NOT EXISTS run_id text;
ALTER TABLE ops.accuauth_submit_claim ADD COLUMN IF NOT EXISTS doubt_until timestamptz;
ALTER TABLE ops.accuauth_submit_claim ADD COLUMN IF NOT EXISTS vendor_answer_id bigint
    REFERENCES raw.vendor_answer (answer_id);
CREATE INDEX IF NOT EXISTS accuauth_submit_claim_doubt_idx
    ON ops.accuauth_submit_claim (e164) WHERE state = 'in_doubt';

COMMENT ON COLUMN ops.accuauth_submit_claim.state IS 'sending (claimed, call in progress, or the process died mid-call), submitted (vendor answered, or its callback was matched to this claim; see submission_id), failed (vendor refused, or the call surely never reached it: may be retried), in_doubt (the answer was lost after the request was sent: the vendor may have charged; never resent in this run).';
COMMENT ON COLUMN ops.accuauth_submit_claim.dag_id IS 'Airflow DAG of the run that claimed the number.';
COMMENT ON COLUMN ops.accuauth_submit_claim.run_id IS 'Airflow run that claimed the number (the wait of that run watches its in-doubt claims).';
COMMENT ON COLUMN ops.accuauth_submit_claim.doubt_until IS 'For an in-doubt claim: until when the run waits for a vendor callback carrying this number; after it the number stays in doubt (listed in ops.accuauth_in_doubt).';
COMMENT ON COLUMN ops.accuauth_submit_claim.vendor_answer_id IS 'The verbatim submit answer (raw.vendor_answer), or the row recording that no answer came.';

ALTER TABLE telco.accuauth_phone_check ADD COLUMN IF NOT EXISTS echoed_number text;
ALTER TABLE telco.accuauth_phone_check ADD COLUMN IF NOT EXISTS vendor_answer_id bigint
    REFERENCES raw.vendor_answer (answer_id);

COMMENT ON COLUMN telco.accuauth_phone_check.phone_number IS 'The number we submitted (digits with the country code, e.g. 52...).';
COMMENT ON COLUMN telco.accuauth_phone_check.e164 IS 'The number in E.164 with +, always derived from the number we submitted (never from the vendor''s echo).';
COMMENT ON COLUMN telco.accuauth_phone_check.echoed_number IS 'result.phone_number or the callback''s phone_number exactly as the vendor sent it (may be 00-prefixed, masked or otherwise reformatted).';
COMMENT ON COLUMN telco.accuauth_phone_check.vendor_answer_id IS 'The latest vendor answer (submit or poll) this row was loaded from, kept verbatim in raw.vendor_answer.';

CREATE OR REPLACE VIEW ops.accuauth_in_doubt AS
SELECT c.run_key, c.dag_id, c.run_id, c.e164, c.claimed_at, c.doubt_until, c.vendor_status, c.error,
       c.vendor_answer_id
FROM ops.accuauth_submit_claim c
WHERE c.state = 'in_doubt';

COMMENT ON VIEW ops.accuauth_in_doubt IS 'AccuAuth numbers whose paid submit may have been charged but whose answer was lost and whose callback never came: not resent in their run; check them by hand or let a later run buy them again.';
COMMENT ON COLUMN ops.accuauth_in_doubt.run_key IS 'dag_id/run_id of the run that claimed the number.';
COMMENT ON COLUMN ops.accuauth_in_doubt.dag_id IS 'Airflow DAG of the run.';
COMMENT ON COLUMN ops.accuauth_in_doubt.run_id IS 'Airflow run of the claim.';
COMMENT ON COLUMN ops.accuauth_in_doubt.e164 IS 'The number in doubt, E.164 with +.';
COMMENT ON COLUMN ops.accuauth_in_doubt.claimed_at IS 'When the number was claimed (just before the submit call).';
COMMENT ON COLUMN ops.accuauth_in_doubt.doubt_until IS 'Until when the run waited for a callback.';
COMMENT ON COLUMN ops.accuauth_in_doubt.vendor_status IS 'What we saw instead of an answer: TIMEOUT, TRANSPORT, INTERNAL_ERROR, HTTP_5xx.';
COMMENT ON COLUMN ops.accuauth_in_doubt.error IS 'Details of the lost answer (never credentials).';
COMMENT ON COLUMN ops.accuauth_in_doubt.vendor_answer_id IS 'raw.vendor_answer row of the lost answer (its body, when any bytes came).';
