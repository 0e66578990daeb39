-- V0800 The inbox's number-check index also holds the phone: (batchNo, phone) instead of batchNo.
--
-- "Which numbers of these batches still lack a result" (phonecheck.nxcloud.results) asks, per
-- expected (batch, phone), whether a push for it is in the inbox. With batchNo alone, a plan that
-- probes the inbox per number (what the planner picks when it underestimates the numbers of a
-- batch, e.g. before the freshly filled day partition is analysed) read every push of the batch
-- for every number: 5,000 x 5,000 rows a batch, minutes for a 100,000-number run. With the phone
-- in the index each probe reads one row. batchNo stays the leading column, so every lookup by
-- batch alone (loading a run's pushes) still uses it; the receiver keeps one index to maintain.
--
-- Same name as before (the index V0100 created and V0710 carried onto the partitions). Re-runnable:
-- replaced only while it does not hold the phone yet.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_indexes
        WHERE schemaname = 'raw' AND indexname = 'webhook_event_nxcloud_batch_idx'
          AND indexdef NOT LIKE '%phone%'
    ) THEN
        DROP INDEX raw.webhook_event_nxcloud_batch_idx;
    END IF;
END
$$;
CREATE INDEX IF NOT EXISTS webhook_event_nxcloud_batch_idx
    ON raw.webhook_event ((payload->>'batchNo'), (payload->>'phone'))
    WHERE endpoint = 'nxcloud_number_check';
COMMENT ON INDEX raw.webhook_event_nxcloud_batch_idx IS
    'NXCLOUD number-check pushes by (batchNo, phone): a run''s pushes by batch, and whether one number of a batch has a push (phonecheck.nxcloud.results).';
