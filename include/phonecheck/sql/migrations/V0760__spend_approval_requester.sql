-- V0760 spend approval: who asked and whether a question is still open.
-- * requested_by / requested_via: the Airflow user who triggered the run and how (the run's
--   triggering_user_name and run type); with decided_by they show that two people took part
--   (four eyes, docs/operations.md).
-- * decision 'awaiting': the run asked a person and has no answer yet. A retry of the approval
--   task finds this row and waits for the question already asked (the answer may already be on it)
--   instead of asking again.
ALTER TABLE ops.spend_approval DROP CONSTRAINT IF EXISTS spend_approval_decision_check;
ALTER TABLE ops.spend_approval ADD CONSTRAINT spend_approval_decision_check
    CHECK (decision IN ('awaiting', 'auto_approved', 'approved', 'rejected', 'timed_out'));
ALTER TABLE ops.spend_approval
    ADD COLUMN IF NOT EXISTS requested_by text,
    ADD COLUMN IF NOT EXISTS requested_via text,
    ADD COLUMN IF NOT EXISTS self_approval_allowed boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN ops.spend_approval.decision IS 'awaiting (asked, no answer yet), auto_approved (estimate at or under the threshold), approved, rejected, timed_out (no answer in time: treated as rejected).';
COMMENT ON COLUMN ops.spend_approval.requested_by IS 'Airflow user name of the person who triggered the run (NULL for scheduled runs).';
COMMENT ON COLUMN ops.spend_approval.requested_via IS 'How the run came about (Airflow''s run type: manual, scheduled, backfill, asset_triggered).';
COMMENT ON COLUMN ops.spend_approval.self_approval_allowed IS 'Whether the deployment allowed the requester to answer their own approval (phonecheck_allow_self_approval); false = four eyes.';
