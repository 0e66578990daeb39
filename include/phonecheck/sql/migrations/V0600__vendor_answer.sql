-- V0600 raw.vendor_answer: every answer a vendor API gave us, verbatim (query pages, submit and
-- poll answers), including the ones we could not read. Typed rows link here through a
-- vendor_answer_id column added by the migration that starts filling it.

CREATE TABLE IF NOT EXISTS raw.vendor_answer (
    answer_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor        text        NOT NULL,
    api           text        NOT NULL,
    request_ref   text,
    http_status   integer,
    content_type  text,
    body          bytea       NOT NULL,
    parse_error   text,
    dag_id        text,
    run_id        text,
    received_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS vendor_answer_ref_idx ON raw.vendor_answer (vendor, api, request_ref);
CREATE INDEX IF NOT EXISTS vendor_answer_received_idx ON raw.vendor_answer (received_at);

COMMENT ON TABLE raw.vendor_answer IS 'Every answer of a vendor API (NXCLOUD query pages, AccuAuth submit and poll answers), kept verbatim, readable or not.';
COMMENT ON COLUMN raw.vendor_answer.answer_id IS 'Surrogate key; typed rows point here through vendor_answer_id.';
COMMENT ON COLUMN raw.vendor_answer.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN raw.vendor_answer.api IS 'Which call answered, e.g. number_check_query, number_check_submit, accuauth_submit, accuauth_poll.';
COMMENT ON COLUMN raw.vendor_answer.request_ref IS 'What the call was about: batch_no (+ page), task_id, request_id.';
COMMENT ON COLUMN raw.vendor_answer.http_status IS 'HTTP status of the answer.';
COMMENT ON COLUMN raw.vendor_answer.content_type IS 'Content-Type header of the answer.';
COMMENT ON COLUMN raw.vendor_answer.body IS 'The answer body byte for byte (personal data: holds phone numbers).';
COMMENT ON COLUMN raw.vendor_answer.parse_error IS 'Why the answer (or a row of it) could not be read; NULL when it was.';
COMMENT ON COLUMN raw.vendor_answer.dag_id IS 'Airflow DAG that made the call, when known.';
COMMENT ON COLUMN raw.vendor_answer.run_id IS 'Airflow run that made the call, when known.';
COMMENT ON COLUMN raw.vendor_answer.received_at IS 'When the answer was received.';
