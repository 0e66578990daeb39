-- V0400 analysts' layer: mart views over the typed tables, and the read-only
-- `analyst` role. Re-runnable: CREATE OR REPLACE VIEW, the role guarded by a DO block.
--
-- Conventions of every view below:
-- * a NXCLOUD result's time is when we received it: the push (pushed_at), else the query API
--   row (queried_at), else when the row was stored (first_seen_at). The vendor sends no check time.
-- * a NXCLOUD result's check level is checkLevel as stored, else the level of our submission,
--   else inferred from the fields it carries (live = HLR 5, dial = call 4, a success with only
--   basic fields = basic 1). checkLevel 2 (NXCLOUD query-API doc examples, undocumented) stays 2.
-- * days are UTC dates.
-- * rows whose number could not be turned into E.164 (masked vendor examples) have no e164 and
--   are left out of mart.latest_phone_status only.

------------------------------------------------------------------------------------------------
-- mart.phone_check_result: every number check result of both vendors, one shape
------------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW mart.phone_check_result AS
SELECT
    'nxcloud'::text AS vendor,
    CASE lvl.check_level WHEN 1 THEN 'basic' WHEN 4 THEN 'call' WHEN 5 THEN 'hlr'
         WHEN 2 THEN 'level_2' ELSE 'unknown' END AS check_kind,
    lvl.check_level,
    n.e164,
    n.phone AS phone_as_received,
    n.batch_no AS check_key,
    n.region_code,
    n.carrier,
    n.number_type,
    n.code,
    (n.code IS NULL OR n.code = 0) AS succeeded,
    n.pre_check,
    n.validity,
    n.reachable,
    n.roaming,
    n.early,
    n.answered,
    n.response,
    NULL::text AS accuauth_status,
    NULL::text AS phone_status,
    n.price,
    n.currency,
    COALESCE(n.pushed_at, n.queried_at, n.first_seen_at) AS checked_at
FROM telco.nxcloud_number_check n
LEFT JOIN ops.number_check_submission s ON s.submission_id = n.submission_id
CROSS JOIN LATERAL (
    SELECT COALESCE(
        n.check_level,
        s.check_level,
        CASE WHEN n.validity IS NOT NULL OR n.reachable IS NOT NULL OR n.roaming IS NOT NULL THEN 5
             WHEN n.early IS NOT NULL OR n.answered IS NOT NULL OR n.response IS NOT NULL THEN 4
             WHEN n.code = 0 THEN 1 END
    ) AS check_level
) lvl
UNION ALL
SELECT
    'accuauth',
    'phone_status',
    NULL::integer,
    a.e164,
    a.phone_number,
    a.task_id,
    s.region_code,
    NULL::text,
    NULL::text,
    NULL::integer,
    (a.status = 'OK'),
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    a.status,
    a.phone_status,
    NULL::numeric(12,4),
    NULL::text,
    COALESCE(a.completed_at, a.submitted_at, a.first_seen_at)
FROM telco.accuauth_phone_check a
LEFT JOIN ops.number_check_submission s ON s.submission_id = a.submission_id;

COMMENT ON VIEW mart.phone_check_result IS 'Every number check result of both vendors in one shape: one row per NXCLOUD (batch, phone) result and per AccuAuth task. The other mart views are built on it.';
COMMENT ON COLUMN mart.phone_check_result.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN mart.phone_check_result.check_kind IS 'basic, call, hlr (NXCLOUD levels 1, 4, 5), level_2 (undocumented NXCLOUD level seen in NXCLOUD query-API doc), unknown (a NXCLOUD failure whose level is not known), phone_status (AccuAuth).';
COMMENT ON COLUMN mart.phone_check_result.check_level IS 'NXCLOUD checkLevel as stored, else our submission''s, else inferred from the fields present (live = 5, dial = 4, success with basic fields only = 1). NULL for AccuAuth.';
COMMENT ON COLUMN mart.phone_check_result.e164 IS 'The number in E.164 (derived by us); NULL when the vendor''s number is not one (masked examples).';
COMMENT ON COLUMN mart.phone_check_result.phone_as_received IS 'The number exactly as the vendor reported it.';
COMMENT ON COLUMN mart.phone_check_result.check_key IS 'NXCLOUD batch_no or AccuAuth task_id: with e164 (NXCLOUD: phone) it finds the typed row.';
COMMENT ON COLUMN mart.phone_check_result.region_code IS 'ISO 3166-1 alpha-2 region: NXCLOUD regionCode; AccuAuth: the region of our submission (NULL when unknown).';
COMMENT ON COLUMN mart.phone_check_result.carrier IS 'NXCLOUD carrier (AccuAuth reports none).';
COMMENT ON COLUMN mart.phone_check_result.number_type IS 'NXCLOUD numberType as received (0-8, or mobile/others/invalid).';
COMMENT ON COLUMN mart.phone_check_result.code IS 'NXCLOUD receipt code (0 or NULL = success).';
COMMENT ON COLUMN mart.phone_check_result.succeeded IS 'NXCLOUD: code 0 or none (query rows); AccuAuth: status OK.';
COMMENT ON COLUMN mart.phone_check_result.pre_check IS 'NXCLOUD preCheck (YES/NO).';
COMMENT ON COLUMN mart.phone_check_result.validity IS 'NXCLOUD HLR validity (YES/NO/UNKNOWN/empty).';
COMMENT ON COLUMN mart.phone_check_result.reachable IS 'NXCLOUD HLR reachable (YES/NO/UNKNOWN/empty).';
COMMENT ON COLUMN mart.phone_check_result.roaming IS 'NXCLOUD HLR roaming (YES/NO/UNKNOWN/empty).';
COMMENT ON COLUMN mart.phone_check_result.early IS 'NXCLOUD call check: it rang (YES/NO/UNKNOWN).';
COMMENT ON COLUMN mart.phone_check_result.answered IS 'NXCLOUD call check: it was answered (YES/NO/UNKNOWN).';
COMMENT ON COLUMN mart.phone_check_result.response IS 'NXCLOUD call check response (bell, busy, invalid_number, ...).';
COMMENT ON COLUMN mart.phone_check_result.accuauth_status IS 'AccuAuth status (OK, PENDING, an error status, or our EXPIRED).';
COMMENT ON COLUMN mart.phone_check_result.phone_status IS 'AccuAuth phone_status (ring, connected, empty, busy, turned_off, ...).';
COMMENT ON COLUMN mart.phone_check_result.price IS 'NXCLOUD price of this check (AccuAuth results carry no price).';
COMMENT ON COLUMN mart.phone_check_result.currency IS 'ISO 4217 currency of price.';
COMMENT ON COLUMN mart.phone_check_result.checked_at IS 'When the result reached us: NXCLOUD push, else query row, else storage time; AccuAuth completion, else submission, else storage time.';

------------------------------------------------------------------------------------------------
-- mart.latest_phone_status: one row per E.164 number across both vendors
------------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW mart.latest_phone_status AS
WITH latest_per_kind AS (
    -- AccuAuth: only finished tasks, so a re-check still pending never hides the last answer
    SELECT DISTINCT ON (e164, vendor, check_kind) *
    FROM mart.phone_check_result
    WHERE e164 IS NOT NULL AND (vendor = 'nxcloud' OR accuauth_status <> 'PENDING')
    ORDER BY e164, vendor, check_kind, checked_at DESC, check_key DESC
),
latest_overall AS (
    SELECT DISTINCT ON (e164) e164, vendor, check_kind, checked_at
    FROM latest_per_kind
    ORDER BY e164, checked_at DESC, vendor, check_kind
),
latest_identity AS (
    SELECT DISTINCT ON (e164) e164, region_code, carrier, number_type
    FROM mart.phone_check_result
    WHERE e164 IS NOT NULL AND vendor = 'nxcloud' AND region_code IS NOT NULL
    ORDER BY e164, checked_at DESC, check_key DESC
)
SELECT
    k.e164,
    i.region_code,
    i.carrier,
    i.number_type,
    o.vendor AS latest_vendor,
    o.check_kind AS latest_check_kind,
    o.checked_at AS latest_checked_at,
    max(k.code) FILTER (WHERE k.check_kind = 'basic') AS basic_code,
    max(k.pre_check) FILTER (WHERE k.check_kind = 'basic') AS basic_pre_check,
    max(k.check_key) FILTER (WHERE k.check_kind = 'basic') AS basic_batch_no,
    max(k.checked_at) FILTER (WHERE k.check_kind = 'basic') AS basic_checked_at,
    max(k.code) FILTER (WHERE k.check_kind = 'hlr') AS hlr_code,
    max(k.validity) FILTER (WHERE k.check_kind = 'hlr') AS hlr_validity,
    max(k.reachable) FILTER (WHERE k.check_kind = 'hlr') AS hlr_reachable,
    max(k.roaming) FILTER (WHERE k.check_kind = 'hlr') AS hlr_roaming,
    max(k.check_key) FILTER (WHERE k.check_kind = 'hlr') AS hlr_batch_no,
    max(k.checked_at) FILTER (WHERE k.check_kind = 'hlr') AS hlr_checked_at,
    max(k.code) FILTER (WHERE k.check_kind = 'call') AS call_code,
    max(k.early) FILTER (WHERE k.check_kind = 'call') AS call_early,
    max(k.answered) FILTER (WHERE k.check_kind = 'call') AS call_answered,
    max(k.response) FILTER (WHERE k.check_kind = 'call') AS call_response,
    max(k.check_key) FILTER (WHERE k.check_kind = 'call') AS call_batch_no,
    max(k.checked_at) FILTER (WHERE k.check_kind = 'call') AS call_checked_at,
    max(k.accuauth_status) FILTER (WHERE k.vendor = 'accuauth') AS accuauth_status,
    max(k.phone_status) FILTER (WHERE k.vendor = 'accuauth') AS accuauth_phone_status,
    max(k.check_key) FILTER (WHERE k.vendor = 'accuauth') AS accuauth_task_id,
    max(k.checked_at) FILTER (WHERE k.vendor = 'accuauth') AS accuauth_checked_at
FROM latest_per_kind k
JOIN latest_overall o ON o.e164 = k.e164
LEFT JOIN latest_identity i ON i.e164 = k.e164
GROUP BY k.e164, i.region_code, i.carrier, i.number_type, o.vendor, o.check_kind, o.checked_at;

COMMENT ON VIEW mart.latest_phone_status IS 'Latest known status of each phone number (E.164) across both vendors: the latest NXCLOUD result per check level (basic, HLR, call), the latest finished AccuAuth check, and which vendor/check said something last and when. Failed checks count as results (see *_code). Numbers without E.164 are left out.';
COMMENT ON COLUMN mart.latest_phone_status.e164 IS 'The number in E.164 with +.';
COMMENT ON COLUMN mart.latest_phone_status.region_code IS 'ISO region from the latest NXCLOUD result that reported one.';
COMMENT ON COLUMN mart.latest_phone_status.carrier IS 'Carrier from that same NXCLOUD result.';
COMMENT ON COLUMN mart.latest_phone_status.number_type IS 'NXCLOUD numberType from that same result (2 = mobile; see the data dictionary).';
COMMENT ON COLUMN mart.latest_phone_status.latest_vendor IS 'Vendor of the most recent result for this number.';
COMMENT ON COLUMN mart.latest_phone_status.latest_check_kind IS 'Check of the most recent result: basic, hlr, call, level_2, unknown, phone_status.';
COMMENT ON COLUMN mart.latest_phone_status.latest_checked_at IS 'When the most recent result reached us.';
COMMENT ON COLUMN mart.latest_phone_status.basic_code IS 'Receipt code of the latest NXCLOUD basic check (0 = success).';
COMMENT ON COLUMN mart.latest_phone_status.basic_pre_check IS 'preCheck of the latest NXCLOUD basic check.';
COMMENT ON COLUMN mart.latest_phone_status.basic_batch_no IS 'Batch of the latest NXCLOUD basic check.';
COMMENT ON COLUMN mart.latest_phone_status.basic_checked_at IS 'When the latest NXCLOUD basic result reached us.';
COMMENT ON COLUMN mart.latest_phone_status.hlr_code IS 'Receipt code of the latest NXCLOUD HLR check.';
COMMENT ON COLUMN mart.latest_phone_status.hlr_validity IS 'validity of the latest NXCLOUD HLR check (YES/NO/UNKNOWN/empty).';
COMMENT ON COLUMN mart.latest_phone_status.hlr_reachable IS 'reachable of the latest NXCLOUD HLR check.';
COMMENT ON COLUMN mart.latest_phone_status.hlr_roaming IS 'roaming of the latest NXCLOUD HLR check.';
COMMENT ON COLUMN mart.latest_phone_status.hlr_batch_no IS 'Batch of the latest NXCLOUD HLR check.';
COMMENT ON COLUMN mart.latest_phone_status.hlr_checked_at IS 'When the latest NXCLOUD HLR result reached us.';
COMMENT ON COLUMN mart.latest_phone_status.call_code IS 'Receipt code of the latest NXCLOUD call check.';
COMMENT ON COLUMN mart.latest_phone_status.call_early IS 'early (it rang) of the latest NXCLOUD call check.';
COMMENT ON COLUMN mart.latest_phone_status.call_answered IS 'answered of the latest NXCLOUD call check.';
COMMENT ON COLUMN mart.latest_phone_status.call_response IS 'response of the latest NXCLOUD call check.';
COMMENT ON COLUMN mart.latest_phone_status.call_batch_no IS 'Batch of the latest NXCLOUD call check.';
COMMENT ON COLUMN mart.latest_phone_status.call_checked_at IS 'When the latest NXCLOUD call result reached us.';
COMMENT ON COLUMN mart.latest_phone_status.accuauth_status IS 'status of the latest finished AccuAuth check (OK, an error status, EXPIRED); pending checks are skipped.';
COMMENT ON COLUMN mart.latest_phone_status.accuauth_phone_status IS 'phone_status of that AccuAuth check.';
COMMENT ON COLUMN mart.latest_phone_status.accuauth_task_id IS 'task_id of that AccuAuth check.';
COMMENT ON COLUMN mart.latest_phone_status.accuauth_checked_at IS 'When that AccuAuth result reached us.';

------------------------------------------------------------------------------------------------
-- mart.daily_spend
------------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW mart.daily_spend AS
SELECT
    (checked_at AT TIME ZONE 'UTC')::date AS day,
    vendor,
    region_code,
    check_level,
    check_kind,
    currency,
    count(*) AS checks,
    count(price) AS priced_checks,
    sum(price) AS spend
FROM mart.phone_check_result
WHERE vendor = 'nxcloud' OR accuauth_status <> 'PENDING'
GROUP BY 1, 2, 3, 4, 5, 6;

COMMENT ON VIEW mart.daily_spend IS 'Checks and spend per UTC day, vendor, region, check level and currency. NXCLOUD: every result received (failures included; they usually carry no price), spend = sum of cost.price. AccuAuth: finished checks (OK, errors, expired) counted; its API reports no price, so spend and currency are NULL.';
COMMENT ON COLUMN mart.daily_spend.day IS 'UTC day the results reached us.';
COMMENT ON COLUMN mart.daily_spend.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN mart.daily_spend.region_code IS 'ISO region (NXCLOUD regionCode; AccuAuth: region of our submission, NULL when unknown).';
COMMENT ON COLUMN mart.daily_spend.check_level IS 'NXCLOUD check level (1 basic, 4 call, 5 HLR; see mart.phone_check_result); NULL for AccuAuth.';
COMMENT ON COLUMN mart.daily_spend.check_kind IS 'basic, call, hlr, level_2, unknown, phone_status.';
COMMENT ON COLUMN mart.daily_spend.currency IS 'ISO 4217 currency of spend (NULL for results without a price).';
COMMENT ON COLUMN mart.daily_spend.checks IS 'Results received.';
COMMENT ON COLUMN mart.daily_spend.priced_checks IS 'Results that carried a price.';
COMMENT ON COLUMN mart.daily_spend.spend IS 'Sum of prices, in currency (NULL when no result carried a price, e.g. AccuAuth).';

------------------------------------------------------------------------------------------------
-- mart.daily_outcome_rates
------------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW mart.daily_outcome_rates AS
WITH outcome AS (
    SELECT
        (checked_at AT TIME ZONE 'UTC')::date AS day,
        vendor,
        region_code,
        carrier,
        succeeded,
        -- each flag is NULL when the result says nothing about it (it stays out of the rate)
        CASE WHEN vendor = 'nxcloud' THEN validity = 'YES'
             WHEN phone_status IS NOT NULL THEN phone_status <> 'empty' END AS is_valid,
        CASE WHEN vendor = 'nxcloud' THEN reachable = 'YES'
             WHEN phone_status IS NOT NULL THEN phone_status IN ('ring', 'connected', 'busy') END AS is_reachable,
        CASE WHEN vendor = 'nxcloud' THEN answered = 'YES'
             WHEN phone_status IS NOT NULL THEN phone_status = 'connected' END AS is_answered
    FROM mart.phone_check_result
    WHERE succeeded
)
SELECT
    day,
    vendor,
    region_code,
    carrier,
    count(*) AS checks,
    count(is_valid) AS validity_known,
    count(*) FILTER (WHERE is_valid) AS valid,
    round(100.0 * count(*) FILTER (WHERE is_valid) / NULLIF(count(is_valid), 0), 2) AS valid_pct,
    count(is_reachable) AS reachability_known,
    count(*) FILTER (WHERE is_reachable) AS reachable,
    round(100.0 * count(*) FILTER (WHERE is_reachable) / NULLIF(count(is_reachable), 0), 2) AS reachable_pct,
    count(is_answered) AS answer_known,
    count(*) FILTER (WHERE is_answered) AS answered,
    round(100.0 * count(*) FILTER (WHERE is_answered) / NULLIF(count(is_answered), 0), 2) AS answered_pct
FROM outcome
GROUP BY 1, 2, 3, 4;

COMMENT ON VIEW mart.daily_outcome_rates IS 'Outcome rates of successful checks per UTC day, vendor, region and carrier. NXCLOUD: valid = HLR validity YES, reachable = HLR reachable YES, answered = call check answered YES, each over the results that reported that field (UNKNOWN and empty count in the denominator). AccuAuth (no carrier): valid = phone_status not empty, reachable = ring/connected/busy, answered = connected.';
COMMENT ON COLUMN mart.daily_outcome_rates.day IS 'UTC day the results reached us.';
COMMENT ON COLUMN mart.daily_outcome_rates.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN mart.daily_outcome_rates.region_code IS 'ISO region (AccuAuth: of our submission).';
COMMENT ON COLUMN mart.daily_outcome_rates.carrier IS 'NXCLOUD carrier (NULL for AccuAuth).';
COMMENT ON COLUMN mart.daily_outcome_rates.checks IS 'Successful results.';
COMMENT ON COLUMN mart.daily_outcome_rates.validity_known IS 'Results that reported validity (NXCLOUD HLR) or a phone_status (AccuAuth).';
COMMENT ON COLUMN mart.daily_outcome_rates.valid IS 'Results saying the number is valid.';
COMMENT ON COLUMN mart.daily_outcome_rates.valid_pct IS '100 * valid / validity_known, 2 decimals (NULL when nothing was reported).';
COMMENT ON COLUMN mart.daily_outcome_rates.reachability_known IS 'Results that reported reachability.';
COMMENT ON COLUMN mart.daily_outcome_rates.reachable IS 'Results saying the handset is reachable.';
COMMENT ON COLUMN mart.daily_outcome_rates.reachable_pct IS '100 * reachable / reachability_known, 2 decimals.';
COMMENT ON COLUMN mart.daily_outcome_rates.answer_known IS 'Results that reported whether a call was answered (NXCLOUD call check; AccuAuth phone_status).';
COMMENT ON COLUMN mart.daily_outcome_rates.answered IS 'Results saying the call was answered.';
COMMENT ON COLUMN mart.daily_outcome_rates.answered_pct IS '100 * answered / answer_known, 2 decimals.';

------------------------------------------------------------------------------------------------
-- mart.voice_call_outcomes
------------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW mart.voice_call_outcomes AS
SELECT
    (COALESCE(start_time, first_seen_at) AT TIME ZONE 'UTC')::date AS day,
    'voice_receipt'::text AS record_kind,
    country_code,
    hangup_cause,
    NULL::integer AS hangup_code,
    hangup_disposition,
    result AS outcome,
    count(*) AS calls,
    count(*) FILTER (WHERE result IN ('Successful connection', '成功接通')) AS connected_calls,
    COALESCE(sum(duration), 0) AS total_duration_s,
    round(avg(duration), 1) AS avg_duration_s
FROM telco.nxcloud_voice_receipt
GROUP BY 1, 2, 3, 4, 5, 6, 7
UNION ALL
SELECT
    (COALESCE(start_at, first_seen_at) AT TIME ZONE 'UTC')::date,
    'pns_call',
    NULL,
    hangup_cause,
    hangup_code,
    CASE hangup WHEN 0 THEN 'caller' WHEN 1 THEN 'callee' END,
    call_status,
    count(*),
    count(*) FILTER (WHERE answer_at IS NOT NULL),
    COALESCE(sum(duration), 0),
    round(avg(duration), 1)
FROM telco.nxcloud_call_record
GROUP BY 1, 2, 3, 4, 5, 6, 7;

COMMENT ON VIEW mart.voice_call_outcomes IS 'Voice receipts (NXCLOUD voice-receipt doc) and privacy-number call records (NXCLOUD call-record doc) per UTC day and hang-up cause: how many calls, how many connected, how long.';
COMMENT ON COLUMN mart.voice_call_outcomes.day IS 'UTC day the call started (storage day when the vendor gave no start).';
COMMENT ON COLUMN mart.voice_call_outcomes.record_kind IS 'voice_receipt (telco.nxcloud_voice_receipt) or pns_call (telco.nxcloud_call_record).';
COMMENT ON COLUMN mart.voice_call_outcomes.country_code IS 'Calling code of the called number (voice receipts only).';
COMMENT ON COLUMN mart.voice_call_outcomes.hangup_cause IS 'Hang-up cause name as received (FreeSWITCH/Q.850, e.g. NORMAL_CLEARING; empty for a normal PNS call).';
COMMENT ON COLUMN mart.voice_call_outcomes.hangup_code IS 'Q.850 cause code (PNS only; 0 = none).';
COMMENT ON COLUMN mart.voice_call_outcomes.hangup_disposition IS 'Who ended the call: voice hangup_disposition as received (send_bye, recv_bye, ...); PNS hangup party as caller/callee.';
COMMENT ON COLUMN mart.voice_call_outcomes.outcome IS 'Voice result as received (Successful connection / Unsuccessful connection); PNS callStatus (0 unknown, 1 normal end, 2 abnormal end).';
COMMENT ON COLUMN mart.voice_call_outcomes.calls IS 'Calls in the group.';
COMMENT ON COLUMN mart.voice_call_outcomes.connected_calls IS 'Voice: result says connected; PNS: the call was answered (answerAt set).';
COMMENT ON COLUMN mart.voice_call_outcomes.total_duration_s IS 'Sum of connection durations, seconds.';
COMMENT ON COLUMN mart.voice_call_outcomes.avg_duration_s IS 'Average connection duration, seconds (1 decimal).';

------------------------------------------------------------------------------------------------
-- dq: what a result row's sample holds (the quality runner stores the failing rows' keys)
------------------------------------------------------------------------------------------------
COMMENT ON COLUMN dq.validation_result.unexpected_sample IS 'Up to 20 rows that broke the expectation: their key columns and the offending value(s), e.g. {"batch_no": "b1", "phone": "86...", "number_type": "9"}; {"error": ...} when the expectation itself could not run.';

------------------------------------------------------------------------------------------------
-- the analyst role: reads telco, mart and dq; nothing else
------------------------------------------------------------------------------------------------
-- Roles are cluster-wide (several warehouses or test databases may share a server), so create it
-- only when missing; a concurrent creator is not an error. NOLOGIN: a group role. Deployments
-- either give it a login and password (ALTER ROLE analyst LOGIN PASSWORD '...') or grant it to
-- people's own roles (GRANT analyst TO alice). A migrating role without CREATEROLE gets a
-- warning instead of a failed migration (an administrator creates the role and re-runs this).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'analyst') THEN
        BEGIN
            CREATE ROLE analyst NOLOGIN;
            COMMENT ON ROLE analyst IS 'Read-only analysts: SELECT on telco, mart and dq; no access to raw or ops.';
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role analyst not created (%): ask an administrator to create it', SQLERRM;
                RETURN;
        END;
    END IF;
    GRANT USAGE ON SCHEMA telco, mart, dq TO analyst;
    GRANT SELECT ON ALL TABLES IN SCHEMA telco, mart, dq TO analyst;
    -- tables and views later migrations create (as this same migrating role) are readable too
    ALTER DEFAULT PRIVILEGES IN SCHEMA telco, mart, dq GRANT SELECT ON TABLES TO analyst;
    REVOKE ALL ON SCHEMA raw, ops FROM analyst;
    REVOKE ALL ON ALL TABLES IN SCHEMA raw, ops FROM analyst;
END
$$;
