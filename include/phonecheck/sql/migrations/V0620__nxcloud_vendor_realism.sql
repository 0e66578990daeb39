-- V0620 NXCLOUD number check, vendor realism: one merge rule for push and query rows, query pages
-- linked to their verbatim answer, batches "in doubt" after a lost submit answer, and one query
-- rate limiter per access key shared by every process. Re-runnable.

ALTER TABLE telco.nxcloud_number_check ADD COLUMN IF NOT EXISTS vendor_check_level integer;
ALTER TABLE telco.nxcloud_number_check
    ADD COLUMN IF NOT EXISTS vendor_answer_id bigint REFERENCES raw.vendor_answer (answer_id);

COMMENT ON TABLE telco.nxcloud_number_check IS
    'NXCLOUD number check results, one row per (batchNo, phone). Result pushes and query API rows merge into one row by ONE rule: '
    '(1) a push fills and overwrites what is known (a later push wins); '
    '(2) a query row only fills columns a push left empty: once a push arrived, a query row never changes a pushed value; '
    '(3) an empty string from the vendor means unknown and is stored as NULL in the typed columns (the original stays in raw.webhook_event / raw.vendor_answer); NULL never erases a value; '
    '(4) price and currency always come together from the same source (the push when it carried a price); '
    '(5) check_level is the level we submitted unless the vendor reports one of the documented levels 1, 4, 5 (for batches we did not submit: what the vendor reported); what the vendor reported is always kept in vendor_check_level. '
    'See docs/vendors/nxcloud.md.';
COMMENT ON COLUMN telco.nxcloud_number_check.check_level IS
    'Check level: 1 basic, 4 call, 5 HLR. The level we submitted; a level the vendor reports replaces it only when it is one of these documented values (vendor_check_level keeps what the vendor said). For batches we did not submit, what the vendor reported (its example rows show an undocumented 2).';
COMMENT ON COLUMN telco.nxcloud_number_check.vendor_check_level IS
    'checkLevel exactly as the query API reported it, documented or not (its own example rows show 2); NULL for pushes, which carry none.';
COMMENT ON COLUMN telco.nxcloud_number_check.vendor_answer_id IS
    'The query API page (raw.vendor_answer) this row was last read from; NULL when only a push was seen.';
COMMENT ON COLUMN telco.nxcloud_number_check.validity IS 'live.validity (HLR): YES, NO, UNKNOWN; an empty string from the vendor is stored as NULL (unknown).';
COMMENT ON COLUMN telco.nxcloud_number_check.reachable IS 'live.reachable (HLR): YES, NO, UNKNOWN; an empty string from the vendor is stored as NULL (unknown).';
COMMENT ON COLUMN telco.nxcloud_number_check.roaming IS 'live.roaming (HLR): YES, NO, UNKNOWN; an empty string from the vendor is stored as NULL (unknown).';
COMMENT ON COLUMN telco.nxcloud_number_check.price IS 'cost.price (push) or price (query): cost of this check, 4 decimals; taken together with currency from the same answer (the push first).';
COMMENT ON COLUMN telco.nxcloud_number_check.currency IS 'cost.currency / currency: ISO 4217; always from the same answer as price.';
COMMENT ON COLUMN telco.nxcloud_number_check.source IS 'Which kind of answer last changed the row: push or query.';

ALTER TABLE ops.number_check_submission ADD COLUMN IF NOT EXISTS in_doubt_since timestamptz;
COMMENT ON COLUMN ops.number_check_submission.in_doubt_since IS
    'NXCLOUD: when a submit answer was lost after the request was sent (5xx, read timeout, connection closed). Status in_doubt until a push or query row shows the vendor has the batch; only after the push window plus our margin brought nothing is the same batchNo sent again.';
COMMENT ON COLUMN ops.number_check_submission.status IS
    'submitted, pending (about to be sent), in_doubt (NXCLOUD: answer lost after sending, see in_doubt_since), complete, expired (AccuAuth task older than 24 h), failed.';

CREATE TABLE IF NOT EXISTS ops.nxcloud_query_slot (
    key_hash    text        PRIMARY KEY,
    next_at     timestamptz NOT NULL,
    calls       bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ops.nxcloud_query_slot IS
    'One query-API rate limiter per NXCLOUD access key, shared by every process (concurrent runs, daily sync, in-doubt probes): the next moment a query call may be made.';
COMMENT ON COLUMN ops.nxcloud_query_slot.key_hash IS 'SHA-256 (hex) of the access key (the key itself is not stored).';
COMMENT ON COLUMN ops.nxcloud_query_slot.next_at IS 'Earliest time of the next query call with this key (database clock).';
COMMENT ON COLUMN ops.nxcloud_query_slot.calls IS 'Query call slots handed out for this key so far.';
COMMENT ON COLUMN ops.nxcloud_query_slot.updated_at IS 'When the last slot was handed out.';
