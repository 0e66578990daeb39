-- V0720 personal-data tags for ops.run_number (the numbers a run was asked to check), which
-- arrived in the same release as the classification: its numbers are personal data.
SELECT ops.classify_column('ops', 'run_number', 'e164', 'pii');
SELECT ops.classify_column('ops', 'run_number', 'raw_input', 'pii');
