-- V0740 The query API as the fallback, shared fairly; one merge in any order. Re-runnable.
-- (1) The per-access-key query limiter hands the free slot round-robin to the waiting takers
--     (one limiter = one task of one run), so a small run is not queued behind a big one
--     (phonecheck.nxcloud.ratelimit.WarehouseIntervalLimiter).
-- (2) telco.nxcloud_number_check: the merge rule no longer depends on the order in which pushes,
--     query rows and daily syncs arrive (phonecheck.loader, phonecheck.nxcloud.results.merge_results).

CREATE TABLE IF NOT EXISTS ops.nxcloud_query_waiter (
    ticket             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_hash           text        NOT NULL,
    taker              text        NOT NULL,
    grants_at_request  bigint      NOT NULL,
    requested_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    seen_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS nxcloud_query_waiter_key_idx ON ops.nxcloud_query_waiter (key_hash, ticket);
COMMENT ON TABLE ops.nxcloud_query_waiter IS
    'Query-API calls waiting for their turn at an access key''s slot (ops.nxcloud_query_slot), one row per waiting call; deleted when granted, or when its process stopped refreshing it.';
COMMENT ON COLUMN ops.nxcloud_query_waiter.ticket IS 'Order of requests (oldest first within one taker).';
COMMENT ON COLUMN ops.nxcloud_query_waiter.key_hash IS 'SHA-256 (hex) of the access key (as in ops.nxcloud_query_slot).';
COMMENT ON COLUMN ops.nxcloud_query_waiter.taker IS 'Who waits: one limiter, i.e. one task of one run (host:pid:random).';
COMMENT ON COLUMN ops.nxcloud_query_waiter.grants_at_request IS 'The key''s slots handed out (ops.nxcloud_query_slot.calls) when this call started waiting: how many others went first is measurable.';
COMMENT ON COLUMN ops.nxcloud_query_waiter.requested_at IS 'When the call started waiting (database clock).';
COMMENT ON COLUMN ops.nxcloud_query_waiter.seen_at IS 'When the waiter last looked; a row not refreshed for a few seconds is dropped (its process died).';

CREATE TABLE IF NOT EXISTS ops.nxcloud_query_taker (
    key_hash         text        NOT NULL,
    taker            text        NOT NULL,
    last_grant       bigint      NOT NULL,
    last_granted_at  timestamptz NOT NULL,
    PRIMARY KEY (key_hash, taker)
);
COMMENT ON TABLE ops.nxcloud_query_taker IS
    'Round-robin state of the query limiter: when each taker of an access key was last served; the free slot goes to the waiting taker served least recently. Rows older than a day are forgotten.';
COMMENT ON COLUMN ops.nxcloud_query_taker.key_hash IS 'SHA-256 (hex) of the access key.';
COMMENT ON COLUMN ops.nxcloud_query_taker.taker IS 'One limiter (one task of one run).';
COMMENT ON COLUMN ops.nxcloud_query_taker.last_grant IS 'Number of the slot last granted to this taker (ops.nxcloud_query_slot.calls at that grant).';
COMMENT ON COLUMN ops.nxcloud_query_taker.last_granted_at IS 'When that slot was granted (database clock).';

COMMENT ON COLUMN ops.nxcloud_query_slot.calls IS 'Query call slots handed out for this key so far (each grant is numbered by it).';
COMMENT ON COLUMN ops.nxcloud_query_slot.next_at IS 'Earliest time of the next query call with this key (database clock); the waiting taker served least recently gets it.';

COMMENT ON TABLE telco.nxcloud_number_check IS
    'NXCLOUD number check results, one row per (batchNo, phone). Every writer (the on-demand load, push processing, reconcile, the daily sync) merges through ONE rule whose result does not depend on the order answers arrive in: '
    '(1) answers are ranked: a push above a query row; among pushes the first delivered (the vendor retries the same body); among query rows the latest read; '
    '(2) each column takes the better-ranked answer''s value and only fills holes from the others: once a push arrived, a query row never changes a pushed value; '
    '(3) an empty string from the vendor means unknown and is stored as NULL in the typed columns (the original stays in raw.webhook_event / raw.vendor_answer); NULL never erases a value; '
    '(4) price and currency always come together from the same answer (the push when it carried a price); '
    '(5) check_level is the level we submitted unless the vendor reports one of the documented levels 1, 4, 5 (for batches we did not submit: what the vendor reported); what the vendor reported is always kept in vendor_check_level. '
    'The query API is only asked for numbers the pushes did not bring. See docs/vendors/nxcloud.md.';
COMMENT ON COLUMN telco.nxcloud_number_check.source IS 'push once any push for the number merged, else query.';
COMMENT ON COLUMN telco.nxcloud_number_check.pushed_at IS 'When the first result push was received (NULL = no push seen).';
COMMENT ON COLUMN telco.nxcloud_number_check.raw_event_id IS 'The inbox row of the first push received, when a push arrived.';
COMMENT ON COLUMN telco.nxcloud_number_check.queried_at IS 'When the query API last returned this row (NULL = never queried: its push arrived).';
COMMENT ON COLUMN telco.nxcloud_number_check.vendor_answer_id IS
    'The query API page (raw.vendor_answer) this row was last read from (the latest queried_at); NULL when only a push was seen.';
COMMENT ON COLUMN telco.nxcloud_number_check.vendor_check_level IS
    'checkLevel exactly as the query API reported it in the latest read, documented or not (its own example rows show 2); NULL for pushes, which carry none.';
