-- V0773 where a run ran. Several Airflows can share one warehouse (make demo runs its DAGs in an
-- Airflow of its own, beside make airflow's; a staging deployment beside production): the Phone
-- checks page links only the runs its own Airflow holds and labels the others with this.
ALTER TABLE ops.run_intake ADD COLUMN IF NOT EXISTS origin text;
COMMENT ON COLUMN ops.run_intake.origin IS 'Which Airflow ran the run: PHONECHECK_RUN_ORIGIN of the worker that prepared it (make demo sets "make demo"); NULL when not set.';
