-- V0610 receiver durability (docs/receiver.md): a replay ledger per spooled record, and voice
-- receipt `second` / `cycle` as numbers (the vendor types them "number": decimals happen).

CREATE TABLE IF NOT EXISTS ops.receiver_spool_record (
    record_id    text        PRIMARY KEY,
    spool_file   text        NOT NULL,
    replayed_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE ops.receiver_spool_record IS 'Spooled webhook deliveries the receiver replayed into raw.webhook_event: one row per spool record, committed with its inbox row, so a record counts once however often its file is replayed.';
COMMENT ON COLUMN ops.receiver_spool_record.record_id IS 'Id of the spool record (random, unique; <file>:<line> for records of the older voice-*.jsonl format).';
COMMENT ON COLUMN ops.receiver_spool_record.spool_file IS 'Spool file the record was read from (spool-<uuid>.rec).';
COMMENT ON COLUMN ops.receiver_spool_record.replayed_at IS 'When the replay of this record committed.';

-- Only when still integer: views created later (the analyst tier) depend on these columns, and
-- PostgreSQL refuses to retype a column a view uses, so a re-run must not touch them.
DO $$
BEGIN
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = 'telco' AND table_name = 'nxcloud_voice_receipt' AND column_name = 'second') <> 'numeric' THEN
        ALTER TABLE telco.nxcloud_voice_receipt ALTER COLUMN second TYPE numeric(12, 4);
    END IF;
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = 'telco' AND table_name = 'nxcloud_voice_receipt' AND column_name = 'cycle') <> 'numeric' THEN
        ALTER TABLE telco.nxcloud_voice_receipt ALTER COLUMN cycle TYPE numeric(12, 4);
    END IF;
END
$$;
COMMENT ON COLUMN telco.nxcloud_voice_receipt.second IS 'second: billed duration in seconds (a number: may carry decimals).';
COMMENT ON COLUMN telco.nxcloud_voice_receipt.cycle IS 'cycle: billing cycle, seconds (a number: may carry decimals).';
