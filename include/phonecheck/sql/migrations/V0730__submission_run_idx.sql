-- V0730 the submissions of one run: the NXCLOUD on-demand DAG hands on a run key, not a batch
-- list, and its wait, reconcile, load and validate read the run's batches by (dag_id, run_id)
-- (phonecheck.nxcloud.submissions.RUN_BATCHES_SQL; spend settlement selects the same way). The
-- table also holds one row per AccuAuth task, so that read needs an index to stay flat.
CREATE INDEX IF NOT EXISTS number_check_submission_run_idx
    ON ops.number_check_submission (vendor, dag_id, run_id);
COMMENT ON INDEX ops.number_check_submission_run_idx IS
    'The submissions of one run (run key = dag_id/run_id), read by the NXCLOUD on-demand DAG and spend settlement.';
