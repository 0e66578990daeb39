-- V0750 how many times a batch was sent to NXCLOUD's paid submit (the first send included).
-- A batch whose answers keep getting lost is sent again only after the in-doubt window, and at
-- most phonecheck.nxcloud.submissions.MAX_SUBMIT_ROUNDS times in all: the count lives in the
-- row, not in the task, because the wait between two sends runs in the triggerer and the task
-- that resumes is a new process (docs/vendors/nxcloud.md, "in doubt").
ALTER TABLE ops.number_check_submission ADD COLUMN IF NOT EXISTS send_count integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN ops.number_check_submission.send_count IS
    'NXCLOUD: paid submit calls sent for this batchNo (first send included); a batch in doubt is sent again at most up to the configured limit.';
