-- V0650 ops.run_number and ops.run_intake: the numbers a run accepted live in the warehouse,
-- keyed by the run, so tasks hand each other a run key and counts instead of the numbers.

CREATE TABLE IF NOT EXISTS ops.run_number (
    run_key       text        NOT NULL,
    e164          text        NOT NULL,
    position      bigint      NOT NULL,
    vendor        text        NOT NULL,
    region_code   text        NOT NULL,
    country_code  text        NOT NULL,
    line_type     text        NOT NULL,
    raw_input     text        NOT NULL,
    fresh         boolean     NOT NULL DEFAULT false,
    prepared_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_key, e164)
);

CREATE INDEX IF NOT EXISTS run_number_position_idx ON ops.run_number (run_key, position);
CREATE INDEX IF NOT EXISTS run_number_prepared_idx ON ops.run_number (prepared_at);

COMMENT ON TABLE ops.run_number IS 'The distinct valid numbers one pipeline run accepted (after offline normalisation), read by its later tasks. Personal data: holds phone numbers; erased and expired with the other run data.';
COMMENT ON COLUMN ops.run_number.run_key IS 'The run: "<dag_id>/<run_id>".';
COMMENT ON COLUMN ops.run_number.e164 IS 'The number in E.164 (+5215512345678).';
COMMENT ON COLUMN ops.run_number.position IS 'Input position (0-based) of its first occurrence: tasks read numbers in input order.';
COMMENT ON COLUMN ops.run_number.vendor IS 'Vendor the run is for (nxcloud or accuauth).';
COMMENT ON COLUMN ops.run_number.region_code IS 'ISO 3166-1 alpha-2 region of the number (001 = non-geographic).';
COMMENT ON COLUMN ops.run_number.country_code IS 'Country calling code, e.g. 52.';
COMMENT ON COLUMN ops.run_number.line_type IS 'Line type by number range (libphonenumber), e.g. MOBILE, FIXED_LINE_OR_MOBILE.';
COMMENT ON COLUMN ops.run_number.raw_input IS 'The input as the user gave it (first occurrence).';
COMMENT ON COLUMN ops.run_number.fresh IS 'True when skipped: checked (or in flight) within the run''s freshness window, so not bought again.';
COMMENT ON COLUMN ops.run_number.prepared_at IS 'When the run''s prepare step stored it.';

CREATE TABLE IF NOT EXISTS ops.run_intake (
    run_key         text        PRIMARY KEY,
    vendor          text        NOT NULL,
    dag_id          text,
    run_id          text,
    source          text,
    received        bigint      NOT NULL,
    rejected        bigint      NOT NULL,
    duplicates      bigint      NOT NULL,
    skipped_fresh   bigint      NOT NULL,
    to_check        bigint      NOT NULL,
    prepared_at     timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE ops.run_intake IS 'What each run''s prepare step received and made of it (one row per run; a retried prepare replaces it).';
COMMENT ON COLUMN ops.run_intake.run_key IS 'The run: "<dag_id>/<run_id>".';
COMMENT ON COLUMN ops.run_intake.vendor IS 'Vendor the run is for (nxcloud or accuauth).';
COMMENT ON COLUMN ops.run_intake.dag_id IS 'Airflow DAG of the run.';
COMMENT ON COLUMN ops.run_intake.run_id IS 'Airflow run id.';
COMMENT ON COLUMN ops.run_intake.source IS 'Where the numbers came from: "form" (the numbers field) and/or the numbers_uri without credentials or query string.';
COMMENT ON COLUMN ops.run_intake.received IS 'Input lines received (non-empty).';
COMMENT ON COLUMN ops.run_intake.rejected IS 'Lines rejected offline (reasons in ops.rejected_number).';
COMMENT ON COLUMN ops.run_intake.duplicates IS 'Valid lines that repeated a number already in the run.';
COMMENT ON COLUMN ops.run_intake.skipped_fresh IS 'Distinct numbers skipped as checked (or in flight) within the freshness window.';
COMMENT ON COLUMN ops.run_intake.to_check IS 'Distinct numbers left to check (paid).';
COMMENT ON COLUMN ops.run_intake.prepared_at IS 'When the prepare step finished.';
