-- V0774 where each run ran, for every DAG (not only the runs with an intake): make demo records
-- each run it makes in its own Airflow, and a worker with PHONECHECK_RUN_ORIGIN set records the
-- runs it prepares. The Phone checks page of another Airflow on the same warehouse labels those
-- runs with it instead of linking to a run page that would answer 404.
CREATE TABLE IF NOT EXISTS ops.run_origin (
    dag_id       text        NOT NULL,
    run_id       text        NOT NULL,
    origin       text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, run_id)
);
COMMENT ON TABLE ops.run_origin IS 'Which Airflow ran a run (e.g. "make demo"), for the runs of Airflows that share this warehouse. Expires with the other run data.';
COMMENT ON COLUMN ops.run_origin.dag_id IS 'Airflow DAG of the run.';
COMMENT ON COLUMN ops.run_origin.run_id IS 'Airflow run id.';
COMMENT ON COLUMN ops.run_origin.origin IS 'Where it ran, in words: PHONECHECK_RUN_ORIGIN of the process that ran it.';
COMMENT ON COLUMN ops.run_origin.recorded_at IS 'When it was recorded.';
