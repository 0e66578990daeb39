-- V0640 Spend control: a monthly budget per vendor and currency, a ledger where every run
-- reserves its estimate before any paid call and settles to the real charges afterwards, the
-- approvals given before spending (who, when, what they saw), and the mart view of spend vs budget.
-- How it is used: docs/operations.md. Re-runnable.

CREATE TABLE IF NOT EXISTS ops.spend_budget (
    budget_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor      text          NOT NULL,
    currency    text          NOT NULL,
    month       date          CHECK (month IS NULL OR extract(day FROM month) = 1),
    amount      numeric(14,4) NOT NULL CHECK (amount >= 0),
    note        text,
    updated_by  text,
    updated_at  timestamptz   NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS spend_budget_key_uq
    ON ops.spend_budget (vendor, currency, COALESCE(month, DATE '0001-01-01'));
COMMENT ON TABLE ops.spend_budget IS 'Monthly spend budget per vendor and currency. A row with month NULL is the standing budget of every month; a row for one month overrides it. No row: no monthly limit (spend is still recorded).';
COMMENT ON COLUMN ops.spend_budget.budget_id IS 'Surrogate key.';
COMMENT ON COLUMN ops.spend_budget.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN ops.spend_budget.currency IS 'ISO 4217 currency of amount; reservations in another currency are not counted against it.';
COMMENT ON COLUMN ops.spend_budget.month IS 'First day of the UTC month this budget is for; NULL = every month without its own row.';
COMMENT ON COLUMN ops.spend_budget.amount IS 'Most that reservations and charges of the month may add up to, in currency.';
COMMENT ON COLUMN ops.spend_budget.note IS 'Why this budget (contract, approval reference...).';
COMMENT ON COLUMN ops.spend_budget.updated_by IS 'Who set it, when known.';
COMMENT ON COLUMN ops.spend_budget.updated_at IS 'When it was last set.';

CREATE TABLE IF NOT EXISTS ops.spend_ledger (
    entry_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor            text          NOT NULL,
    currency          text          NOT NULL,
    month             date          NOT NULL,
    dag_id            text          NOT NULL,
    run_id            text          NOT NULL,
    status            text          NOT NULL CHECK (status IN ('reserved', 'settled', 'refused', 'released')),
    estimated         numeric(14,4) NOT NULL CHECK (estimated >= 0),
    charged           numeric(14,4) CHECK (charged >= 0),
    outstanding       numeric(14,4) CHECK (outstanding >= 0),
    amount            numeric(14,4) NOT NULL CHECK (amount >= 0),
    budget            numeric(14,4),
    committed_before  numeric(14,4),
    message           text,
    detail            jsonb         NOT NULL DEFAULT '{}'::jsonb,
    reserved_at       timestamptz   NOT NULL DEFAULT now(),
    settled_at        timestamptz,
    updated_at        timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT spend_ledger_run_uq UNIQUE (vendor, currency, dag_id, run_id)
);
CREATE INDEX IF NOT EXISTS spend_ledger_month_idx ON ops.spend_ledger (vendor, currency, month);
COMMENT ON TABLE ops.spend_ledger IS 'One row per run, vendor and currency: the estimate reserved before any paid call (under a lock per vendor, currency and month, so concurrent runs never exceed the monthly budget together), then settled to the charges.';
COMMENT ON COLUMN ops.spend_ledger.entry_id IS 'Surrogate key.';
COMMENT ON COLUMN ops.spend_ledger.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN ops.spend_ledger.currency IS 'ISO 4217 currency of every amount in the row.';
COMMENT ON COLUMN ops.spend_ledger.month IS 'First day of the UTC month the reservation was made in; the spend counts against that month''s budget.';
COMMENT ON COLUMN ops.spend_ledger.dag_id IS 'Airflow DAG of the run.';
COMMENT ON COLUMN ops.spend_ledger.run_id IS 'Airflow run that reserved.';
COMMENT ON COLUMN ops.spend_ledger.status IS 'reserved (estimate held), settled (charges known, amount = charged + outstanding), refused (would have exceeded the budget: nothing spent), released (the run spent nothing).';
COMMENT ON COLUMN ops.spend_ledger.estimated IS 'The run''s cost estimate (an upper bound), in currency.';
COMMENT ON COLUMN ops.spend_ledger.charged IS 'What the vendor charged for the run''s results (sum of result prices, or checks x contract price), once settled.';
COMMENT ON COLUMN ops.spend_ledger.outstanding IS 'Estimate still held at settlement for numbers submitted without a result yet (they may still be charged).';
COMMENT ON COLUMN ops.spend_ledger.amount IS 'What counts against the budget now: estimated while reserved, charged + outstanding once settled, 0 when refused or released.';
COMMENT ON COLUMN ops.spend_ledger.budget IS 'The monthly budget that applied when the run reserved (NULL: none).';
COMMENT ON COLUMN ops.spend_ledger.committed_before IS 'Reserved + settled amounts of the month before this run''s reservation.';
COMMENT ON COLUMN ops.spend_ledger.message IS 'What the reservation decided, in words (e.g. by how much it would have exceeded the budget).';
COMMENT ON COLUMN ops.spend_ledger.detail IS 'The estimate''s breakdown (lines per country and level) and settlement counts; no phone numbers.';
COMMENT ON COLUMN ops.spend_ledger.reserved_at IS 'When the reservation (or refusal) was made.';
COMMENT ON COLUMN ops.spend_ledger.settled_at IS 'When the run was last settled or released.';
COMMENT ON COLUMN ops.spend_ledger.updated_at IS 'Last change to this row.';

CREATE TABLE IF NOT EXISTS ops.spend_approval (
    approval_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor          text          NOT NULL,
    dag_id          text          NOT NULL,
    run_id          text          NOT NULL,
    decision        text          NOT NULL CHECK (decision IN ('auto_approved', 'approved', 'rejected', 'timed_out')),
    decided_by      text,
    decided_by_name text,
    estimated       jsonb         NOT NULL DEFAULT '{}'::jsonb,
    threshold       numeric(14,4),
    currency        text,
    month_spend     jsonb         NOT NULL DEFAULT '{}'::jsonb,
    requested_at    timestamptz,
    decided_at      timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT spend_approval_run_uq UNIQUE (vendor, dag_id, run_id)
);
COMMENT ON TABLE ops.spend_approval IS 'The decision taken before a run spends: approved or rejected by a person in the Airflow UI, timed out, or approved automatically under the threshold.';
COMMENT ON COLUMN ops.spend_approval.approval_id IS 'Surrogate key.';
COMMENT ON COLUMN ops.spend_approval.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN ops.spend_approval.dag_id IS 'Airflow DAG of the run.';
COMMENT ON COLUMN ops.spend_approval.run_id IS 'Airflow run asking to spend.';
COMMENT ON COLUMN ops.spend_approval.decision IS 'auto_approved (estimate at or under the threshold), approved, rejected, timed_out (no answer in time: treated as rejected).';
COMMENT ON COLUMN ops.spend_approval.decided_by IS 'Airflow user id of the person who answered (NULL for auto_approved / timed_out).';
COMMENT ON COLUMN ops.spend_approval.decided_by_name IS 'Airflow user name of the person who answered.';
COMMENT ON COLUMN ops.spend_approval.estimated IS 'Estimated cost per currency the decision was about.';
COMMENT ON COLUMN ops.spend_approval.threshold IS 'Auto-approve threshold that applied, in currency.';
COMMENT ON COLUMN ops.spend_approval.currency IS 'ISO 4217 currency of threshold.';
COMMENT ON COLUMN ops.spend_approval.month_spend IS 'The month''s reserved + settled spend per currency shown to the approver.';
COMMENT ON COLUMN ops.spend_approval.requested_at IS 'When the run asked for approval.';
COMMENT ON COLUMN ops.spend_approval.decided_at IS 'When the decision was recorded.';

CREATE OR REPLACE VIEW mart.monthly_spend_vs_budget AS
WITH spend AS (
    SELECT month, vendor, currency,
           sum(amount) FILTER (WHERE status = 'reserved') AS reserved,
           sum(charged) FILTER (WHERE status = 'settled') AS charged,
           sum(outstanding) FILTER (WHERE status = 'settled') AS outstanding,
           sum(amount) AS committed,
           count(*) FILTER (WHERE status IN ('reserved', 'settled')) AS runs,
           count(*) FILTER (WHERE status = 'refused') AS refused_runs
    FROM ops.spend_ledger
    GROUP BY 1, 2, 3
),
budgeted AS (
    SELECT s.*, (
        SELECT b.amount FROM ops.spend_budget b
        WHERE b.vendor = s.vendor AND b.currency = s.currency AND (b.month = s.month OR b.month IS NULL)
        ORDER BY b.month NULLS LAST LIMIT 1
    ) AS budget
    FROM spend s
)
SELECT month, vendor, currency, budget,
       COALESCE(charged, 0) AS charged,
       COALESCE(outstanding, 0) AS outstanding,
       COALESCE(reserved, 0) AS reserved,
       committed,
       budget - committed AS remaining,
       CASE WHEN budget > 0 THEN round(100 * committed / budget, 1) END AS used_pct,
       runs, refused_runs
FROM budgeted;
COMMENT ON VIEW mart.monthly_spend_vs_budget IS 'Spend against the monthly budget per UTC month, vendor and currency, from the spend ledger (our estimates and the charges of our runs; mart.daily_spend has the per-result prices).';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.month IS 'First day of the UTC month.';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.vendor IS 'nxcloud or accuauth.';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.currency IS 'ISO 4217 currency of every amount in the row.';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.budget IS 'The month''s budget (NULL: no limit set).';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.charged IS 'Charged by the vendor for settled runs.';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.outstanding IS 'Estimate still held by settled runs for numbers without a result yet.';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.reserved IS 'Estimates held by runs not settled yet.';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.committed IS 'charged + outstanding + reserved: what counts against the budget.';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.remaining IS 'budget - committed (NULL without a budget).';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.used_pct IS 'committed as a percentage of budget.';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.runs IS 'Runs that reserved (reserved or settled).';
COMMENT ON COLUMN mart.monthly_spend_vs_budget.refused_runs IS 'Runs refused because they would have exceeded the budget.';
