-- V0810 The inbox's day partitions are UTC days, whatever the session's TimeZone.
--
-- V0710 created the first week's partitions from current_date, which is the date in the
-- migrating session's timezone: a session east of UTC (e.g. Pacific/Kiritimati, UTC+14) could
-- skip the current UTC day, one west of it the last day of the week, and those pushes would sit
-- in the default partition until the retention DAG moved them. The partition functions take
-- their days from the caller (the retention DAG passes UTC days, docs/privacy.md); this makes
-- sure the current UTC week exists now, and gives callers that want "from today" a function that
-- takes today in UTC. Re-runnable.

CREATE OR REPLACE FUNCTION raw.ensure_webhook_event_partitions_ahead(days_ahead integer DEFAULT 7)
RETURNS integer LANGUAGE sql AS $$
    SELECT raw.ensure_webhook_event_partitions(
        (now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + days_ahead)
$$;
COMMENT ON FUNCTION raw.ensure_webhook_event_partitions_ahead(integer) IS
    'Create the inbox partitions from the current UTC day to days_ahead days later (UTC days, whatever the session TimeZone); returns how many were created.';
COMMENT ON FUNCTION raw.ensure_webhook_event_partitions(date, date) IS
    'Create the inbox partitions for the UTC days first_day..last_day (moving rows of those days out of the default partition); returns how many were created.';

DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'raw.webhook_event'::regclass) = 'p' THEN
        PERFORM raw.ensure_webhook_event_partitions_ahead(7);
    END IF;
END
$$;
