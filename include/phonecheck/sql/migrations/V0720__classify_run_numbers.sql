-- V0720 personal-data tags for columns that arrived in the same release as the classification:
-- ops.run_number (the numbers a run was asked to check).
SELECT ops.classify_column('ops', 'run_number', 'e164', 'pii');
SELECT ops.classify_column('ops', 'run_number', 'raw_input', 'pii');
-- AccuAuth's echo of the number (as the vendor wrote it back) and the in-doubt list.
SELECT ops.classify_column('telco', 'accuauth_phone_check', 'echoed_number', 'pii');
SELECT ops.classify_column('ops', 'accuauth_in_doubt', 'e164', 'pii');
