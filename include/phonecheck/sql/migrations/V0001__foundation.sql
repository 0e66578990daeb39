-- V0001 foundation: schemas and every contract table (docs/data-dictionary.md).
-- Re-runnable on its own (IF NOT EXISTS); the runner also records it in ops.schema_migration.
-- Every column carries a COMMENT: the catalogue is the data dictionary (docs/data-dictionary.md
-- is generated from it).

CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS telco;
CREATE SCHEMA IF NOT EXISTS dq;
CREATE SCHEMA IF NOT EXISTS mart;

COMMENT ON SCHEMA raw IS 'Verbatim inbox of everything vendors pushed to us (receiver).';
COMMENT ON SCHEMA ops IS 'Operational bookkeeping: submissions, rejected numbers, sync reports, migrations.';
COMMENT ON SCHEMA telco IS 'Typed vendor results, one row per business key.';
COMMENT ON SCHEMA dq IS 'Data-quality validation results.';
COMMENT ON SCHEMA mart IS 'Analyst-facing views.';

------------------------------------------------------------------------------------------------
-- raw.webhook_event: the inbox
------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS raw.webhook_event (
    event_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint        text        NOT NULL,
    vendor          text        NOT NULL,
    dedupe_key      text        NOT NULL,
    content_type    text,
    body            bytea       NOT NULL,
    query_string    text,
    payload         jsonb,
    parse_status    text        NOT NULL DEFAULT 'pending',
    parse_error     text,
    received_at     timestamptz NOT NULL DEFAULT now(),
    last_received_at timestamptz NOT NULL DEFAULT now(),
    delivery_count  integer     NOT NULL DEFAULT 1,
    via_spool       boolean     NOT NULL DEFAULT false,
    processed_at    timestamptz,
    process_error   text,
    CONSTRAINT webhook_event_endpoint_key UNIQUE (endpoint, dedupe_key),
    CONSTRAINT webhook_event_parse_status_check CHECK (parse_status IN ('pending', 'parsed', 'error'))
);
CREATE INDEX IF NOT EXISTS webhook_event_unprocessed_idx
    ON raw.webhook_event (event_id) WHERE processed_at IS NULL;

COMMENT ON TABLE raw.webhook_event IS 'One row per distinct vendor push (deduplicated on the vendor key), stored verbatim before we answered the vendor.';
COMMENT ON COLUMN raw.webhook_event.event_id IS 'Surrogate key; typed rows link here through raw_event_id.';
COMMENT ON COLUMN raw.webhook_event.endpoint IS 'Receiver endpoint: nxcloud_number_check, nxcloud_voice, nxcloud_call, accuauth_phone_number.';
COMMENT ON COLUMN raw.webhook_event.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN raw.webhook_event.dedupe_key IS 'Vendor dedupe key: number check batchNo|phone|messageId; voice messageid|phone; call record id (callId for the legList shape); AccuAuth task_id; sha256 of the body when unparseable.';
COMMENT ON COLUMN raw.webhook_event.content_type IS 'Content-Type header as received.';
COMMENT ON COLUMN raw.webhook_event.body IS 'Request body, byte for byte as received.';
COMMENT ON COLUMN raw.webhook_event.query_string IS 'Raw query string of the request (voice receipts and AccuAuth callbacks carry their fields there).';
COMMENT ON COLUMN raw.webhook_event.payload IS 'Parsed fields as JSON (JSON body, or form/query fields), NULL when unparseable.';
COMMENT ON COLUMN raw.webhook_event.parse_status IS 'pending (stored, not yet parsed), parsed, or error (kept for inspection, see parse_error).';
COMMENT ON COLUMN raw.webhook_event.parse_error IS 'Why the body could not be parsed.';
COMMENT ON COLUMN raw.webhook_event.received_at IS 'When the first delivery was received (server clock).';
COMMENT ON COLUMN raw.webhook_event.last_received_at IS 'When the latest duplicate delivery was received.';
COMMENT ON COLUMN raw.webhook_event.delivery_count IS 'How many times the vendor delivered this push (retries included).';
COMMENT ON COLUMN raw.webhook_event.via_spool IS 'True when the push was first written to the local fsynced spool (warehouse down) and replayed later.';
COMMENT ON COLUMN raw.webhook_event.processed_at IS 'When push processing turned this row into typed rows (NULL = still to do).';
COMMENT ON COLUMN raw.webhook_event.process_error IS 'Why push processing could not map this row (the row is kept).';

------------------------------------------------------------------------------------------------
-- ops: what we submitted and why
------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS ops.number_check_submission (
    submission_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor          text        NOT NULL,
    batch_no        text,
    task_id         text,
    request_id      text,
    check_level     integer,
    region_code     text,
    phones          text[]      NOT NULL,
    phone_count     integer     NOT NULL,
    params          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    estimated_cost  numeric(12,4),
    currency        text,
    status          text        NOT NULL DEFAULT 'submitted',
    response        jsonb,
    failed_numbers  jsonb,
    dag_id          text,
    run_id          text,
    submitted_by    text,
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT number_check_submission_key CHECK (batch_no IS NOT NULL OR task_id IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS number_check_submission_batch_uq
    ON ops.number_check_submission (vendor, batch_no) WHERE batch_no IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS number_check_submission_task_uq
    ON ops.number_check_submission (vendor, task_id) WHERE task_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS number_check_submission_open_idx
    ON ops.number_check_submission (vendor, status) WHERE status IN ('submitted', 'pending');

COMMENT ON TABLE ops.number_check_submission IS 'One row per batch submitted to NXCLOUD or per task submitted to AccuAuth.';
COMMENT ON COLUMN ops.number_check_submission.submission_id IS 'Surrogate key.';
COMMENT ON COLUMN ops.number_check_submission.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN ops.number_check_submission.batch_no IS 'NXCLOUD batchNo we sent (<= 64 chars).';
COMMENT ON COLUMN ops.number_check_submission.task_id IS 'AccuAuth task_id (pending check) or request_id when answered at once.';
COMMENT ON COLUMN ops.number_check_submission.request_id IS 'Vendor request id: NXCLOUD messageId/requestId of the submit answer, AccuAuth request_id.';
COMMENT ON COLUMN ops.number_check_submission.check_level IS 'NXCLOUD checkLevel sent: 1 basic, 4 call, 5 HLR (NULL for AccuAuth).';
COMMENT ON COLUMN ops.number_check_submission.region_code IS 'ISO 3166-1 alpha-2 region of the numbers in this chunk.';
COMMENT ON COLUMN ops.number_check_submission.phones IS 'Numbers submitted, E.164 digits without +.';
COMMENT ON COLUMN ops.number_check_submission.phone_count IS 'Number of phones submitted.';
COMMENT ON COLUMN ops.number_check_submission.params IS 'Run parameters that led to this submission (batch label, freshness window, budget...).';
COMMENT ON COLUMN ops.number_check_submission.estimated_cost IS 'Cost estimated before submitting, in currency.';
COMMENT ON COLUMN ops.number_check_submission.currency IS 'ISO 4217 currency of estimated_cost.';
COMMENT ON COLUMN ops.number_check_submission.status IS 'submitted, pending, complete, expired (AccuAuth task older than 24 h), failed.';
COMMENT ON COLUMN ops.number_check_submission.response IS 'Vendor answer to the submit call, verbatim.';
COMMENT ON COLUMN ops.number_check_submission.failed_numbers IS 'Numbers the vendor refused at submit (2024 failNumber), verbatim.';
COMMENT ON COLUMN ops.number_check_submission.dag_id IS 'Airflow DAG that submitted.';
COMMENT ON COLUMN ops.number_check_submission.run_id IS 'Airflow run that submitted.';
COMMENT ON COLUMN ops.number_check_submission.submitted_by IS 'Who triggered the run, when known.';
COMMENT ON COLUMN ops.number_check_submission.submitted_at IS 'When the submit call succeeded.';
COMMENT ON COLUMN ops.number_check_submission.completed_at IS 'When every number of the submission had a result (or the task expired).';
COMMENT ON COLUMN ops.number_check_submission.updated_at IS 'Last change to this row.';

CREATE TABLE IF NOT EXISTS ops.rejected_number (
    rejected_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor          text        NOT NULL,
    raw_input       text        NOT NULL,
    default_region  text,
    reason          text        NOT NULL,
    dag_id          text,
    run_id          text,
    rejected_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rejected_number_run_uq UNIQUE (vendor, run_id, raw_input)
);
COMMENT ON TABLE ops.rejected_number IS 'Numbers rejected offline before any paid call, with the reason. Never sent to a vendor.';
COMMENT ON COLUMN ops.rejected_number.rejected_id IS 'Surrogate key.';
COMMENT ON COLUMN ops.rejected_number.vendor IS 'Vendor the run was for (nxcloud or accuauth).';
COMMENT ON COLUMN ops.rejected_number.raw_input IS 'The number exactly as the user gave it.';
COMMENT ON COLUMN ops.rejected_number.default_region IS 'Default region used to parse numbers without a country code.';
COMMENT ON COLUMN ops.rejected_number.reason IS 'Why it was rejected (unparseable, invalid for region, too short, ...).';
COMMENT ON COLUMN ops.rejected_number.dag_id IS 'Airflow DAG of the run.';
COMMENT ON COLUMN ops.rejected_number.run_id IS 'Airflow run that rejected it.';
COMMENT ON COLUMN ops.rejected_number.rejected_at IS 'When it was rejected.';

CREATE TABLE IF NOT EXISTS ops.query_sync_report (
    vendor_date         date        NOT NULL,
    batch_no            text        NOT NULL,
    query_rows          integer     NOT NULL,
    pages_fetched       integer     NOT NULL,
    api_calls           integer     NOT NULL,
    missing_push_count  integer     NOT NULL,
    missing_push_phones text[],
    dag_id              text,
    run_id              text,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vendor_date, batch_no)
);
COMMENT ON TABLE ops.query_sync_report IS 'One row per (vendor date, batch) reconciled through the NXCLOUD query API by the daily sync; the latest sync wins.';
COMMENT ON COLUMN ops.query_sync_report.vendor_date IS 'The query API date (yyyy-MM-dd in the vendor timezone of the connection).';
COMMENT ON COLUMN ops.query_sync_report.batch_no IS 'NXCLOUD batchNo reconciled.';
COMMENT ON COLUMN ops.query_sync_report.query_rows IS 'Result rows the query API returned for the batch and date.';
COMMENT ON COLUMN ops.query_sync_report.pages_fetched IS 'Pages fetched (100 rows a page at most).';
COMMENT ON COLUMN ops.query_sync_report.api_calls IS 'Query API calls made, retries included.';
COMMENT ON COLUMN ops.query_sync_report.missing_push_count IS 'Query rows for which no result push ever arrived.';
COMMENT ON COLUMN ops.query_sync_report.missing_push_phones IS 'Phones whose push never arrived (first 1000).';
COMMENT ON COLUMN ops.query_sync_report.dag_id IS 'Airflow DAG of the sync.';
COMMENT ON COLUMN ops.query_sync_report.run_id IS 'Airflow run of the sync.';
COMMENT ON COLUMN ops.query_sync_report.synced_at IS 'When the sync ran.';

------------------------------------------------------------------------------------------------
-- telco.nxcloud_number_check: NXCLOUD result-push doc pushes + NXCLOUD query-API doc query rows, (batch_no, phone)
------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS telco.nxcloud_number_check (
    batch_no        text        NOT NULL,
    phone           text        NOT NULL,
    message_id      text,
    check_level     integer,
    code            integer,
    msg             text,
    pre_check       text,
    region_code     text,
    country_code    text,
    national_number text,
    stand_number    text,
    number_type     text,
    carrier         text,
    validity        text,
    reachable       text,
    roaming         text,
    early           text,
    answered        text,
    response        text,
    mcc             text,
    mnc             text,
    ported          text,
    active          text,
    price           numeric(12,4),
    currency        text,
    e164            text,
    source          text        NOT NULL,
    raw_event_id    bigint REFERENCES raw.webhook_event (event_id),
    submission_id   bigint REFERENCES ops.number_check_submission (submission_id),
    pushed_at       timestamptz,
    queried_at      timestamptz,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_no, phone)
);
CREATE INDEX IF NOT EXISTS nxcloud_number_check_e164_idx ON telco.nxcloud_number_check (e164, check_level, updated_at);

COMMENT ON TABLE telco.nxcloud_number_check IS 'NXCLOUD number check results, one row per (batchNo, phone); result pushes (NXCLOUD result-push doc) and query API rows (NXCLOUD query-API doc) merge into the same row.';
COMMENT ON COLUMN telco.nxcloud_number_check.batch_no IS 'batchNo.';
COMMENT ON COLUMN telco.nxcloud_number_check.phone IS 'phone as the vendor reports it (digits with country code, no +).';
COMMENT ON COLUMN telco.nxcloud_number_check.message_id IS 'messageId (seed shape) or requestId (2024 shape); not unique per number in practice.';
COMMENT ON COLUMN telco.nxcloud_number_check.check_level IS 'checkLevel: 1 basic, 4 call, 5 HLR; 2 appears in NXCLOUD query-API doc example rows and is kept as received. Pushes do not carry it: filled from our submission or the query API.';
COMMENT ON COLUMN telco.nxcloud_number_check.code IS 'Receipt code: 0 success, else an error code (103, 108, 112, 114, 120, 121, 122; 266 in the 2024 shape). Query rows carry no code and are successes.';
COMMENT ON COLUMN telco.nxcloud_number_check.msg IS 'msg (seed) or message (2024): result description.';
COMMENT ON COLUMN telco.nxcloud_number_check.pre_check IS 'basic.preCheck: YES format check passed, NO not passed.';
COMMENT ON COLUMN telco.nxcloud_number_check.region_code IS 'basic.regionCode (seed) or data.country (2024): ISO 3166-1 alpha-2.';
COMMENT ON COLUMN telco.nxcloud_number_check.country_code IS 'basic.countryCode: calling code, e.g. 86.';
COMMENT ON COLUMN telco.nxcloud_number_check.national_number IS 'basic.nationalNumber: local format.';
COMMENT ON COLUMN telco.nxcloud_number_check.stand_number IS 'basic.standNumber: standard format (digits with country code).';
COMMENT ON COLUMN telco.nxcloud_number_check.number_type IS 'basic.numberType as received: 0-8 in the seed shape (2 = mobile), mobile/others/invalid in the 2024 shape.';
COMMENT ON COLUMN telco.nxcloud_number_check.carrier IS 'basic.carrier (seed) or data.operator (2024).';
COMMENT ON COLUMN telco.nxcloud_number_check.validity IS 'live.validity (HLR): YES, NO, UNKNOWN; empty string seen in NXCLOUD query-API doc.';
COMMENT ON COLUMN telco.nxcloud_number_check.reachable IS 'live.reachable (HLR): YES, NO, UNKNOWN; empty string seen in NXCLOUD query-API doc.';
COMMENT ON COLUMN telco.nxcloud_number_check.roaming IS 'live.roaming (HLR): YES, NO, UNKNOWN; empty string seen in NXCLOUD query-API doc.';
COMMENT ON COLUMN telco.nxcloud_number_check.early IS 'dial.early (call check): rang, YES/NO/UNKNOWN.';
COMMENT ON COLUMN telco.nxcloud_number_check.answered IS 'dial.answered (call check): YES/NO/UNKNOWN.';
COMMENT ON COLUMN telco.nxcloud_number_check.response IS 'dial.response (call check): bell, music, busy, no_response, invalid_number, not_available, number_paused, power_off, power_off_or_out_of_service, voicemail, others.';
COMMENT ON COLUMN telco.nxcloud_number_check.mcc IS 'HLR mcc (2024 shape only).';
COMMENT ON COLUMN telco.nxcloud_number_check.mnc IS 'HLR mnc (2024 shape only).';
COMMENT ON COLUMN telco.nxcloud_number_check.ported IS 'HLR ported flag (2024 shape only), as received (case normalised to upper).';
COMMENT ON COLUMN telco.nxcloud_number_check.active IS 'HLR active flag (2024 shape only), as received (case normalised to upper).';
COMMENT ON COLUMN telco.nxcloud_number_check.price IS 'cost.price (push) or price (query): cost of this check, 4 decimals.';
COMMENT ON COLUMN telco.nxcloud_number_check.currency IS 'cost.currency / currency: ISO 4217.';
COMMENT ON COLUMN telco.nxcloud_number_check.e164 IS 'The number in E.164 with +, derived from phone by us.';
COMMENT ON COLUMN telco.nxcloud_number_check.source IS 'Where the latest information came from: push or query.';
COMMENT ON COLUMN telco.nxcloud_number_check.raw_event_id IS 'The inbox row of the push, when a push arrived.';
COMMENT ON COLUMN telco.nxcloud_number_check.submission_id IS 'Our submission of this batch, when we submitted it.';
COMMENT ON COLUMN telco.nxcloud_number_check.pushed_at IS 'When the result push was received (NULL = no push seen).';
COMMENT ON COLUMN telco.nxcloud_number_check.queried_at IS 'When the query API last returned this row (NULL = never queried).';
COMMENT ON COLUMN telco.nxcloud_number_check.first_seen_at IS 'When we first stored this row.';
COMMENT ON COLUMN telco.nxcloud_number_check.updated_at IS 'When this row last changed.';

------------------------------------------------------------------------------------------------
-- telco.accuauth_phone_check: AccuAuth task-result doc, task_id
------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS telco.accuauth_phone_check (
    task_id         text        PRIMARY KEY,
    request_id      text,
    phone_number    text        NOT NULL,
    e164            text,
    status          text        NOT NULL,
    reason          text,
    phone_status    text,
    submitted_at    timestamptz,
    completed_at    timestamptz,
    expires_at      timestamptz,
    poll_count      integer     NOT NULL DEFAULT 0,
    source          text        NOT NULL,
    raw_event_id    bigint REFERENCES raw.webhook_event (event_id),
    submission_id   bigint REFERENCES ops.number_check_submission (submission_id),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS accuauth_phone_check_e164_idx ON telco.accuauth_phone_check (e164, updated_at);
CREATE INDEX IF NOT EXISTS accuauth_phone_check_open_idx ON telco.accuauth_phone_check (status) WHERE status = 'PENDING';

COMMENT ON TABLE telco.accuauth_phone_check IS 'AccuAuth phone status checks, one row per task_id (request_id when the check was answered at once).';
COMMENT ON COLUMN telco.accuauth_phone_check.task_id IS 'task_id of a pending check, or request_id when the submit answered with a result at once.';
COMMENT ON COLUMN telco.accuauth_phone_check.request_id IS 'request_id of the latest vendor answer (TID + 32 hex).';
COMMENT ON COLUMN telco.accuauth_phone_check.phone_number IS 'phone_number as sent/returned (with country code prefix, e.g. 52...).';
COMMENT ON COLUMN telco.accuauth_phone_check.e164 IS 'The number in E.164 with +, derived by us.';
COMMENT ON COLUMN telco.accuauth_phone_check.status IS 'Vendor status: OK (done), PENDING (in progress), or an error status; EXPIRED is ours (task older than 24 h, never finished).';
COMMENT ON COLUMN telco.accuauth_phone_check.reason IS 'Vendor reason text for non-OK statuses.';
COMMENT ON COLUMN telco.accuauth_phone_check.phone_status IS 'result.phone_status as received: ring, connected, empty, busy, turned_off, outside_service_area, line_abnormal, temp_unavailable.';
COMMENT ON COLUMN telco.accuauth_phone_check.submitted_at IS 'When we submitted the check.';
COMMENT ON COLUMN telco.accuauth_phone_check.completed_at IS 'When the result (or expiry) was recorded.';
COMMENT ON COLUMN telco.accuauth_phone_check.expires_at IS 'submitted_at + 24 h: after this the task id is no longer valid.';
COMMENT ON COLUMN telco.accuauth_phone_check.poll_count IS 'task_result polls made for this task.';
COMMENT ON COLUMN telco.accuauth_phone_check.source IS 'Where the latest information came from: submit, poll or callback.';
COMMENT ON COLUMN telco.accuauth_phone_check.raw_event_id IS 'The inbox row of the callback, when one arrived.';
COMMENT ON COLUMN telco.accuauth_phone_check.submission_id IS 'Our submission row.';
COMMENT ON COLUMN telco.accuauth_phone_check.first_seen_at IS 'When we first stored this row.';
COMMENT ON COLUMN telco.accuauth_phone_check.updated_at IS 'When this row last changed.';

------------------------------------------------------------------------------------------------
-- telco.nxcloud_voice_receipt: NXCLOUD voice-receipt doc, (message_id, phone)
------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS telco.nxcloud_voice_receipt (
    message_id          text        NOT NULL,
    phone               text        NOT NULL,
    country_code        text,
    duration            integer,
    voice_type          text,
    basic_price         numeric(12,4),
    second              integer,
    cycle               integer,
    size                integer,
    customer_price      numeric(12,4),
    start_time_local    text,
    end_time_local      text,
    start_time          timestamptz,
    end_time            timestamptz,
    result              text,
    hangup_cause        text,
    hangup_disposition  text,
    ivr_result          text,
    record_url          text,
    ext                 text,
    e164                text,
    source              text        NOT NULL DEFAULT 'push',
    raw_event_id        bigint REFERENCES raw.webhook_event (event_id),
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, phone)
);
COMMENT ON TABLE telco.nxcloud_voice_receipt IS 'NXCLOUD voice receipts (DR, NXCLOUD voice-receipt doc), one row per (messageid, phone). Pushed once by the vendor.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.message_id IS 'messageid: voice id from the voice submission.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.phone IS 'phone.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.country_code IS 'countryCode: calling code.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.duration IS 'duration: connection duration, seconds.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.voice_type IS 'voice_type as received: 0 group call, 1 verification/notification (DR numbering).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.basic_price IS 'basic_price: basic fee for unsuccessful calls (group call only).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.second IS 'second: billed duration in seconds.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.cycle IS 'cycle: billing cycle, seconds.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.size IS 'size: number of billing cycles.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.customer_price IS 'customer_price: customer unit price.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.start_time_local IS 'start_time exactly as received (yyyy-MM-dd HH:mm:ss, vendor local time).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.end_time_local IS 'end_time exactly as received.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.start_time IS 'start_time converted with the documented rule (VOICE_RECEIPT_TIMEZONE, default Asia/Shanghai).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.end_time IS 'end_time converted with the same rule.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.result IS 'result as received: Successful connection / Unsuccessful connection (Chinese text in some accounts).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.hangup_cause IS 'hangup_cause: FreeSWITCH cause name, e.g. NORMAL_CLEARING.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.hangup_disposition IS 'hangup_disposition: send_cancel, recv_refuse, recv_bye, send_bye, other (recv_cancel, send_refuse possible).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.ivr_result IS 'ivr_result: keypress feedback (group call).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.record_url IS 'record_url: voice record URL (verification).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.ext IS 'ext: custom extension field passed in at submission.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.e164 IS 'The number in E.164 with +, derived by us.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.source IS 'push (the only source of voice receipts).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.raw_event_id IS 'The inbox row of the push.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.first_seen_at IS 'When we first stored this row.';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.updated_at IS 'When this row last changed.';

------------------------------------------------------------------------------------------------
-- telco.nxcloud_call_record: NXCLOUD call-record doc (+ legList shape), record id
------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS telco.nxcloud_call_record (
    record_id         text        PRIMARY KEY,
    call_id           text        NOT NULL,
    business_id       text,
    customer_bind_id  text,
    bind_id           text,
    did               text,
    did_x             text,
    did_y             text,
    caller            text,
    callee            text,
    extension_caller  text,
    extension_callee  text,
    extension_x       text,
    pns_type          text,
    call_status       text,
    call_status_msg   text,
    duration          integer,
    start_at_epoch    bigint,
    answer_at_epoch   bigint,
    hangup_at_epoch   bigint,
    start_at          timestamptz,
    answer_at         timestamptz,
    hangup_at         timestamptz,
    hangup_cause      text,
    hangup_code       integer,
    hangup            integer,
    record_file       text,
    ext               text,
    leg_list          jsonb,
    source            text        NOT NULL DEFAULT 'push',
    raw_event_id      bigint REFERENCES raw.webhook_event (event_id),
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT nxcloud_call_record_call_id_uq UNIQUE (call_id)
);
COMMENT ON TABLE telco.nxcloud_call_record IS 'NXCLOUD privacy-number (PNS) call records (NXCLOUD call-record doc flat shape and the 2024 legList shape), one row per record.';
COMMENT ON COLUMN telco.nxcloud_call_record.record_id IS 'id (call detail record id) as text; the 2024 legList shape has no id, there the callId.';
COMMENT ON COLUMN telco.nxcloud_call_record.call_id IS 'callId: unique per call.';
COMMENT ON COLUMN telco.nxcloud_call_record.business_id IS 'businessId.';
COMMENT ON COLUMN telco.nxcloud_call_record.customer_bind_id IS 'customerBindId.';
COMMENT ON COLUMN telco.nxcloud_call_record.bind_id IS 'bindId.';
COMMENT ON COLUMN telco.nxcloud_call_record.did IS 'did: the privacy (DID) number.';
COMMENT ON COLUMN telco.nxcloud_call_record.did_x IS 'didX (2024 shape).';
COMMENT ON COLUMN telco.nxcloud_call_record.did_y IS 'didY (2024 shape).';
COMMENT ON COLUMN telco.nxcloud_call_record.caller IS 'caller.';
COMMENT ON COLUMN telco.nxcloud_call_record.callee IS 'callee.';
COMMENT ON COLUMN telco.nxcloud_call_record.extension_caller IS 'extensionCaller (Jan-2024 revision).';
COMMENT ON COLUMN telco.nxcloud_call_record.extension_callee IS 'extensionCallee (Jan-2024 revision).';
COMMENT ON COLUMN telco.nxcloud_call_record.extension_x IS 'extensionX (2024 shape).';
COMMENT ON COLUMN telco.nxcloud_call_record.pns_type IS 'pnsType, e.g. axeyb (2024 shape).';
COMMENT ON COLUMN telco.nxcloud_call_record.call_status IS 'callStatus as received (int in the seed, string in 2024): 0 unknown, 1 normal end, 2 abnormal end.';
COMMENT ON COLUMN telco.nxcloud_call_record.call_status_msg IS 'callStatusMsg: details from the switch.';
COMMENT ON COLUMN telco.nxcloud_call_record.duration IS 'duration: call duration in seconds.';
COMMENT ON COLUMN telco.nxcloud_call_record.start_at_epoch IS 'startAt as received (epoch seconds; first leg callStartAt in the 2024 shape).';
COMMENT ON COLUMN telco.nxcloud_call_record.answer_at_epoch IS 'answerAt as received (epoch seconds; 0 = not answered).';
COMMENT ON COLUMN telco.nxcloud_call_record.hangup_at_epoch IS 'hangupAt as received (epoch seconds).';
COMMENT ON COLUMN telco.nxcloud_call_record.start_at IS 'startAt as timestamptz.';
COMMENT ON COLUMN telco.nxcloud_call_record.answer_at IS 'answerAt as timestamptz (NULL when 0 = not answered).';
COMMENT ON COLUMN telco.nxcloud_call_record.hangup_at IS 'hangupAt as timestamptz.';
COMMENT ON COLUMN telco.nxcloud_call_record.hangup_cause IS 'hangupCause: cause name (see docs/vendors/nxcloud.md); empty for a normal call.';
COMMENT ON COLUMN telco.nxcloud_call_record.hangup_code IS 'hangupCode: Q.850 cause code (0 = none).';
COMMENT ON COLUMN telco.nxcloud_call_record.hangup IS 'hangup: who hung up, 0 caller, 1 callee (hangupType of the last leg in the 2024 shape).';
COMMENT ON COLUMN telco.nxcloud_call_record.record_file IS 'recordFile: recording URL.';
COMMENT ON COLUMN telco.nxcloud_call_record.ext IS 'ext (2024 shape).';
COMMENT ON COLUMN telco.nxcloud_call_record.leg_list IS 'legList (2024 shape), verbatim.';
COMMENT ON COLUMN telco.nxcloud_call_record.source IS 'push (the only source of call records).';
COMMENT ON COLUMN telco.nxcloud_call_record.raw_event_id IS 'The inbox row of the push.';
COMMENT ON COLUMN telco.nxcloud_call_record.first_seen_at IS 'When we first stored this row.';
COMMENT ON COLUMN telco.nxcloud_call_record.updated_at IS 'When this row last changed.';

------------------------------------------------------------------------------------------------
-- dq.validation_result
------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS dq.validation_result (
    result_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    validation_run_id  text        NOT NULL,
    dag_id             text,
    task_id            text,
    airflow_run_id     text,
    table_name         text        NOT NULL,
    suite_name         text        NOT NULL,
    expectation_type   text        NOT NULL,
    column_name        text,
    expectation_kwargs jsonb,
    success            boolean     NOT NULL,
    element_count      integer,
    unexpected_count   integer,
    unexpected_sample  jsonb,
    row_filter         text,
    validated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT validation_result_uq UNIQUE (validation_run_id, expectation_type, column_name, expectation_kwargs)
);
CREATE INDEX IF NOT EXISTS validation_result_table_idx ON dq.validation_result (table_name, validated_at);
COMMENT ON TABLE dq.validation_result IS 'One row per expectation per validation run (Great Expectations results).';
COMMENT ON COLUMN dq.validation_result.result_id IS 'Surrogate key.';
COMMENT ON COLUMN dq.validation_result.validation_run_id IS 'Id of one validation run (all expectations of one suite over one set of rows).';
COMMENT ON COLUMN dq.validation_result.dag_id IS 'Airflow DAG that validated.';
COMMENT ON COLUMN dq.validation_result.task_id IS 'Airflow task that validated.';
COMMENT ON COLUMN dq.validation_result.airflow_run_id IS 'Airflow run that validated.';
COMMENT ON COLUMN dq.validation_result.table_name IS 'Validated table, schema-qualified.';
COMMENT ON COLUMN dq.validation_result.suite_name IS 'Expectation suite name.';
COMMENT ON COLUMN dq.validation_result.expectation_type IS 'Expectation, e.g. expect_column_values_to_be_in_set.';
COMMENT ON COLUMN dq.validation_result.column_name IS 'Column the expectation is about (NULL for table-level).';
COMMENT ON COLUMN dq.validation_result.expectation_kwargs IS 'Expectation arguments (value sets, regex, bounds).';
COMMENT ON COLUMN dq.validation_result.success IS 'True when the expectation held.';
COMMENT ON COLUMN dq.validation_result.element_count IS 'Rows validated.';
COMMENT ON COLUMN dq.validation_result.unexpected_count IS 'Rows that broke the expectation.';
COMMENT ON COLUMN dq.validation_result.unexpected_sample IS 'A sample of unexpected values (at most 20).';
COMMENT ON COLUMN dq.validation_result.row_filter IS 'Which rows were validated (e.g. the keys loaded by this run).';
COMMENT ON COLUMN dq.validation_result.validated_at IS 'When the validation ran.';
