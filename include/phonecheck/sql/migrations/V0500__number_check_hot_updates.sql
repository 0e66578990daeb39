-- telco.nxcloud_number_check: let updates be HOT (heap-only tuple: no new index entries).
--
-- V0001 indexed (e164, check_level, updated_at). Every merge that changes a row also sets
-- updated_at, so with updated_at in an index no update could ever be HOT: each one wrote a new
-- entry into both indexes (primary key and this one). Nothing orders by updated_at through this
-- index (lookups are by e164, optionally check_level; the few rows per number sort in memory),
-- so the index is rebuilt without it. A fillfactor of 85 leaves room on each page for the next
-- version of some of its rows (a push row is typically merged later by a query row or a
-- deeper check level), so those updates stay on the page; measured in bench/loader_bench.py.
-- Re-runnable: the new index has a new name; the fillfactor applies to pages written from now.

CREATE INDEX IF NOT EXISTS nxcloud_number_check_e164_level_idx
    ON telco.nxcloud_number_check (e164, check_level);
DROP INDEX IF EXISTS telco.nxcloud_number_check_e164_idx;
ALTER TABLE telco.nxcloud_number_check SET (fillfactor = 85);

COMMENT ON INDEX telco.nxcloud_number_check_e164_level_idx IS
    'Lookups by E.164 number (and check level). Deliberately without updated_at so that merges can be HOT updates.';
