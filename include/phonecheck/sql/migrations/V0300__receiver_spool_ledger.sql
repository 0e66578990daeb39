-- V0300 receiver: ledger of replayed voice-receipt spool files.
-- A spool file's events and its ledger row commit in one transaction; the file is deleted
-- afterwards. A crash between the commit and the delete leaves a file whose name is already
-- here, and the next replay just deletes it: replay is exactly-once per file.

CREATE TABLE IF NOT EXISTS ops.receiver_spool_replay (
    spool_file    text        PRIMARY KEY,
    record_count  integer     NOT NULL,
    replayed_at   timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE ops.receiver_spool_replay IS 'Voice-receipt spool files the webhook receiver replayed into raw.webhook_event (written while the warehouse was down).';
COMMENT ON COLUMN ops.receiver_spool_replay.spool_file IS 'Spool file name (voice-<uuid>.jsonl), unique per receiver process and file.';
COMMENT ON COLUMN ops.receiver_spool_replay.record_count IS 'Readable records the file held (each became, or already was, one inbox row).';
COMMENT ON COLUMN ops.receiver_spool_replay.replayed_at IS 'When the replay committed.';
