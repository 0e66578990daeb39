-- V0772 AccuAuth spend in the marts, like NXCLOUD's. AccuAuth answers carry no price; what a check
-- costs is the contract unit price the run stated before spending, stored on each task's
-- ops.number_check_submission row (estimated_cost, currency; one number per AccuAuth task). Every
-- task the vendor accepted is a paid check, so mart.phone_check_result now carries that price for
-- AccuAuth rows, and mart.daily_spend / analyst.daily_spend sum it. The spend ledger settles an
-- AccuAuth run the same way (accepted checks x unit price), so the marts and the ledger agree.
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
    (CASE WHEN s.status IS DISTINCT FROM 'failed' THEN s.estimated_cost END)::numeric(12,4),
    (CASE WHEN s.status IS DISTINCT FROM 'failed' AND s.estimated_cost IS NOT NULL THEN s.currency END)::text,
    COALESCE(a.completed_at, a.submitted_at, a.first_seen_at)
FROM telco.accuauth_phone_check a
LEFT JOIN ops.number_check_submission s ON s.submission_id = a.submission_id;


COMMENT ON COLUMN mart.phone_check_result.price IS 'What this check cost: NXCLOUD''s price on the result; AccuAuth (whose answers carry no price): the contract unit price the run stated (ops.number_check_submission.estimated_cost).';
COMMENT ON VIEW mart.daily_spend IS 'Checks and spend per UTC day, vendor, region, check level and currency. NXCLOUD: every result received (failures included; they usually carry no price), spend = sum of cost.price. AccuAuth: finished checks (OK, errors, expired), spend = checks x the contract unit price the run stated (AccuAuth answers carry no price).';
COMMENT ON COLUMN mart.daily_spend.spend IS 'Sum of prices, in currency, exact (numeric; round only for display). NULL when no check carried a price.';
