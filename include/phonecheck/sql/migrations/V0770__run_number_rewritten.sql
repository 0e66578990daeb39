-- V0770 a number the intake rewrote into today's form (a Mexican number written the pre-2019
-- way, +52 1 / 044 / 045 / 01; Argentina's 15 mobile marker) keeps what was rewritten next to
-- its input, and the run's intake counts how many. See docs/pipelines.md "Legacy forms".
ALTER TABLE ops.run_number ADD COLUMN IF NOT EXISTS rewritten text;
COMMENT ON COLUMN ops.run_number.rewritten IS 'How the input was rewritten into today''s number (e.g. "Mexican mobile marker 1 after +52 dropped"); NULL when taken as written.';
ALTER TABLE ops.run_intake ADD COLUMN IF NOT EXISTS rewritten integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN ops.run_intake.rewritten IS 'Distinct numbers of the run whose input was rewritten from a legacy form into today''s number (ops.run_number.rewritten).';
