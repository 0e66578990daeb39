-- V0771 ops.rejected_number keeps one row per distinct rejected input of a run, and now how many
-- input lines carried it: a list with the same bad entry 973 times reports "rejected 973" and
-- the table says the same (sum(lines)), instead of one row and no count.
ALTER TABLE ops.rejected_number ADD COLUMN IF NOT EXISTS lines integer NOT NULL DEFAULT 1 CHECK (lines > 0);
COMMENT ON COLUMN ops.rejected_number.lines IS 'How many input lines of the run carried this input: the run''s rejected count (ops.run_intake.rejected) is sum(lines) over its rows.';
COMMENT ON COLUMN ops.run_intake.rejected IS 'Lines rejected offline: sum(lines) of the run''s rows in ops.rejected_number (reasons there).';
