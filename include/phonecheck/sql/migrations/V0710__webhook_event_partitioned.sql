-- V0710 raw.webhook_event partitioned by day (native range partitioning on received_at), so the
-- retention DAG expires the inbox by dropping whole partitions instead of deleting rows
-- (docs/privacy.md). Re-runnable: the conversion runs only while the table is unpartitioned.
--
-- * One partition per UTC day, raw.webhook_event_pYYYYMMDD, plus raw.webhook_event_default for
--   anything outside them (a replayed push from a day without a partition). The retention DAG
--   creates the coming days' partitions ahead and drops expired ones.
-- * A unique index on a partitioned table must contain the partition key, so (endpoint,
--   dedupe_key) can no longer be unique there. Dedupe moves to raw.webhook_event_key, one small
--   row per push, which also says where (event_id, received_at) the push lives. Every insert into
--   raw.webhook_event registers its key (trigger), so a duplicate is refused whoever writes;
--   the receiver stores pushes through raw.store_webhook_event(s), which count a duplicate
--   delivery on the existing row instead (the semantics of the former ON CONFLICT).
-- * Foreign keys into raw.webhook_event (typed rows' raw_event_id) are dropped: a foreign key
--   to a partitioned table needs the partition key too, and an expired partition must be
--   droppable while typed rows live on. raw_event_id stays as a plain link.
-- * Every row of the unpartitioned table is copied (same event_id) and its key registered.

CREATE SEQUENCE IF NOT EXISTS raw.webhook_event_id_seq AS bigint;

CREATE TABLE IF NOT EXISTS raw.webhook_event_key (
    endpoint    text        NOT NULL,
    dedupe_key  text        NOT NULL,
    event_id    bigint      NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (endpoint, dedupe_key)
);
CREATE INDEX IF NOT EXISTS webhook_event_key_received_idx ON raw.webhook_event_key (received_at);
COMMENT ON TABLE raw.webhook_event_key IS 'Dedupe keys of raw.webhook_event (one row per distinct push): a partitioned table cannot enforce (endpoint, dedupe_key) itself. Expired with the inbox partitions.';
COMMENT ON COLUMN raw.webhook_event_key.endpoint IS 'Receiver endpoint, as in raw.webhook_event.';
COMMENT ON COLUMN raw.webhook_event_key.dedupe_key IS 'Vendor dedupe key, as in raw.webhook_event (holds the phone number).';
COMMENT ON COLUMN raw.webhook_event_key.event_id IS 'The push''s raw.webhook_event row.';
COMMENT ON COLUMN raw.webhook_event_key.received_at IS 'Its received_at: the partition it lives in.';

DO $$
DECLARE
    r record;
    first_day date;
    last_day date;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'raw.webhook_event'::regclass) <> 'r' THEN
        RETURN;  -- already partitioned
    END IF;

    FOR r IN
        SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
        WHERE confrelid = 'raw.webhook_event'::regclass AND contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;

    ALTER TABLE raw.webhook_event RENAME TO webhook_event_unpartitioned;
    -- index names are per schema: move the old ones aside, recreate them on the new table below
    FOR r IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'raw.webhook_event_unpartitioned'::regclass
    LOOP
        EXECUTE format('ALTER INDEX raw.%I RENAME TO %I', r.relname, left(r.relname, 50) || '_unpartitioned');
    END LOOP;

    CREATE TABLE raw.webhook_event (
        LIKE raw.webhook_event_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS
    ) PARTITION BY RANGE (received_at);
    ALTER TABLE raw.webhook_event ALTER COLUMN event_id SET DEFAULT nextval('raw.webhook_event_id_seq');
    ALTER SEQUENCE raw.webhook_event_id_seq OWNED BY raw.webhook_event.event_id;
    ALTER TABLE raw.webhook_event ADD CONSTRAINT webhook_event_pkey PRIMARY KEY (event_id, received_at);
    COMMENT ON TABLE raw.webhook_event IS 'One row per distinct vendor push (deduplicated on the vendor key through raw.webhook_event_key), stored verbatim before we answered the vendor. Partitioned by UTC day of received_at; expired partitions are dropped (docs/privacy.md).';
    CREATE TABLE raw.webhook_event_default PARTITION OF raw.webhook_event DEFAULT;

    -- a partition per day that holds rows, and for the next week
    SELECT min(received_at AT TIME ZONE 'UTC')::date, max(received_at AT TIME ZONE 'UTC')::date
    INTO first_day, last_day FROM raw.webhook_event_unpartitioned;
    FOR r IN
        SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date AS day FROM raw.webhook_event_unpartitioned
        UNION SELECT generate_series(current_date, current_date + 7, interval '1 day')::date
    LOOP
        EXECUTE format(
            'CREATE TABLE raw.%I PARTITION OF raw.webhook_event FOR VALUES FROM (%L) TO (%L)',
            'webhook_event_p' || to_char(r.day, 'YYYYMMDD'),
            (r.day::timestamp AT TIME ZONE 'UTC'), ((r.day + 1)::timestamp AT TIME ZONE 'UTC'));
    END LOOP;

    -- the old table's other indexes (ours and any later migration's), on the new table
    FOR r IN
        SELECT pg_get_indexdef(i.indexrelid) AS def, c.relname
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'raw.webhook_event_unpartitioned'::regclass AND NOT i.indisprimary AND NOT i.indisunique
    LOOP
        EXECUTE replace(replace(r.def, 'raw.webhook_event_unpartitioned', 'raw.webhook_event'),
                        'INDEX ' || r.relname || ' ON', 'INDEX ' || replace(r.relname, '_unpartitioned', '') || ' ON');
    END LOOP;

    INSERT INTO raw.webhook_event SELECT * FROM raw.webhook_event_unpartitioned;
    INSERT INTO raw.webhook_event_key (endpoint, dedupe_key, event_id, received_at)
    SELECT endpoint, dedupe_key, event_id, received_at FROM raw.webhook_event_unpartitioned;
    PERFORM setval('raw.webhook_event_id_seq',
                   greatest((SELECT max(event_id) FROM raw.webhook_event_unpartitioned), 1));
    DROP TABLE raw.webhook_event_unpartitioned;
END
$$;

-- Every insert registers its dedupe key; a second row for a key is refused like a unique
-- constraint would (SQLSTATE 23505), whoever inserts. raw.store_webhook_event registers the key
-- itself first, with the same event_id, which this accepts.
CREATE OR REPLACE FUNCTION raw.webhook_event_register_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO raw.webhook_event_key (endpoint, dedupe_key, event_id, received_at)
    VALUES (NEW.endpoint, NEW.dedupe_key, NEW.event_id, NEW.received_at)
    ON CONFLICT (endpoint, dedupe_key) DO NOTHING;
    IF NOT FOUND AND NOT EXISTS (
        SELECT 1 FROM raw.webhook_event_key k
        WHERE k.endpoint = NEW.endpoint AND k.dedupe_key = NEW.dedupe_key
          AND k.event_id = NEW.event_id AND k.received_at = NEW.received_at
    ) THEN
        RAISE unique_violation USING
            MESSAGE = format('duplicate webhook event key (%s, %s)', NEW.endpoint, left(md5(NEW.dedupe_key), 8)),
            CONSTRAINT = 'webhook_event_key_pkey';
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS webhook_event_register_key ON raw.webhook_event;
CREATE TRIGGER webhook_event_register_key BEFORE INSERT ON raw.webhook_event
    FOR EACH ROW EXECUTE FUNCTION raw.webhook_event_register_key();

-- Store one push: insert it, or count one more delivery on the row that already holds its key
-- (deliveries / last_received_at as given; 0 deliveries: leave a stored row as it is). replay =
-- true: a spooled delivery whose receive time the row already carries was counted before (its
-- first write committed after all): no change.
CREATE OR REPLACE FUNCTION raw.store_webhook_event(
    p_endpoint text, p_vendor text, p_dedupe_key text, p_content_type text, p_body bytea,
    p_query_string text, p_payload jsonb, p_parse_status text, p_parse_error text,
    p_received_at timestamptz, p_via_spool boolean,
    p_deliveries integer DEFAULT 1, p_last_received_at timestamptz DEFAULT NULL, p_replay boolean DEFAULT false,
    OUT event_id bigint, OUT inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    stored_at timestamptz;
BEGIN
    INSERT INTO raw.webhook_event_key AS k (endpoint, dedupe_key, event_id, received_at)
    VALUES (p_endpoint, p_dedupe_key, nextval('raw.webhook_event_id_seq'), p_received_at)
    ON CONFLICT (endpoint, dedupe_key) DO NOTHING
    RETURNING k.event_id INTO event_id;
    IF FOUND THEN
        inserted := true;
        INSERT INTO raw.webhook_event AS e
            (event_id, endpoint, vendor, dedupe_key, content_type, body, query_string, payload,
             parse_status, parse_error, received_at, last_received_at, via_spool, delivery_count)
        VALUES (event_id, p_endpoint, p_vendor, p_dedupe_key, p_content_type, p_body, p_query_string,
                p_payload, p_parse_status, p_parse_error, p_received_at,
                coalesce(p_last_received_at, p_received_at), p_via_spool, greatest(p_deliveries, 1));
        RETURN;
    END IF;
    inserted := false;
    SELECT k.event_id, k.received_at INTO event_id, stored_at
    FROM raw.webhook_event_key k WHERE k.endpoint = p_endpoint AND k.dedupe_key = p_dedupe_key;
    IF p_deliveries = 0 THEN
        RETURN;  -- only make sure it is stored
    END IF;
    UPDATE raw.webhook_event AS e
    SET delivery_count = e.delivery_count + p_deliveries,
        last_received_at = greatest(e.last_received_at, coalesce(p_last_received_at, p_received_at))
    WHERE e.event_id = store_webhook_event.event_id AND e.received_at = stored_at
      AND NOT (p_replay AND (e.received_at = p_received_at OR e.last_received_at = p_received_at));
END
$$;

-- Group commit: many deliveries in one statement; a key repeated inside the batch is stored
-- once with its delivery count. Rows are handled in key order, so concurrent batches lock keys
-- in the same order.
CREATE OR REPLACE FUNCTION raw.store_webhook_events(
    p_endpoints text[], p_vendors text[], p_dedupe_keys text[], p_content_types text[], p_bodies bytea[],
    p_query_strings text[], p_payloads text[], p_parse_statuses text[], p_parse_errors text[],
    p_received_ats timestamptz[])
RETURNS TABLE (endpoint text, dedupe_key text, event_id bigint, inserted boolean)
LANGUAGE sql AS $$
    SELECT b.endpoint, b.dedupe_key, s.event_id, s.inserted
    FROM (
        SELECT DISTINCT ON (u.endpoint, u.dedupe_key) u.*,
               count(*) OVER w AS n, max(u.received_at) OVER w AS last_received_at
        FROM unnest(p_endpoints, p_vendors, p_dedupe_keys, p_content_types, p_bodies, p_query_strings,
                    p_payloads, p_parse_statuses, p_parse_errors, p_received_ats) WITH ORDINALITY
             AS u(endpoint, vendor, dedupe_key, content_type, body, query_string, payload,
                  parse_status, parse_error, received_at, ord)
        WINDOW w AS (PARTITION BY u.endpoint, u.dedupe_key)
        ORDER BY u.endpoint, u.dedupe_key, u.ord
    ) AS b
    CROSS JOIN LATERAL raw.store_webhook_event(
        b.endpoint, b.vendor, b.dedupe_key, b.content_type, b.body, b.query_string, b.payload::jsonb,
        b.parse_status, b.parse_error, b.received_at, false, b.n::integer, b.last_received_at) AS s
    ORDER BY b.endpoint, b.dedupe_key
$$;

-- Partition upkeep for the retention DAG. A day whose rows already sit in the default partition
-- (a replay from a day without a partition) gets them moved into its new partition.
CREATE OR REPLACE FUNCTION raw.ensure_webhook_event_partitions(first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date;
    name text;
    lower_bound timestamptz;
    upper_bound timestamptz;
    created integer := 0;
BEGIN
    FOR day IN SELECT generate_series(first_day, last_day, interval '1 day')::date LOOP
        name := 'webhook_event_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('raw.' || quote_ident(name)) IS NOT NULL;
        lower_bound := day::timestamp AT TIME ZONE 'UTC';
        upper_bound := (day + 1)::timestamp AT TIME ZONE 'UTC';
        IF EXISTS (SELECT 1 FROM raw.webhook_event_default
                   WHERE received_at >= lower_bound AND received_at < upper_bound) THEN
            EXECUTE format('CREATE TABLE raw.%I (LIKE raw.webhook_event INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            EXECUTE format(
                'WITH moved AS (DELETE FROM raw.webhook_event_default WHERE received_at >= %L AND received_at < %L RETURNING *)
                 INSERT INTO raw.%I SELECT * FROM moved', lower_bound, upper_bound, name);
            EXECUTE format('ALTER TABLE raw.webhook_event ATTACH PARTITION raw.%I FOR VALUES FROM (%L) TO (%L)',
                           name, lower_bound, upper_bound);
        ELSE
            EXECUTE format('CREATE TABLE raw.%I PARTITION OF raw.webhook_event FOR VALUES FROM (%L) TO (%L)',
                           name, lower_bound, upper_bound);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- Drop every day partition that ends at or before `cutoff` (and delete the default partition's
-- rows older than it, and the dedupe keys of what is gone). Returns the dropped partitions.
CREATE OR REPLACE FUNCTION raw.drop_webhook_event_partitions(cutoff timestamptz, dry_run boolean DEFAULT false)
RETURNS TABLE (partition_name text, row_count bigint) LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname, to_date(substr(c.relname, 16), 'YYYYMMDD') AS day
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'raw.webhook_event'::regclass AND c.relname ~ '^webhook_event_p[0-9]{8}$'
        ORDER BY 1
    LOOP
        CONTINUE WHEN ((r.day + 1)::timestamp AT TIME ZONE 'UTC') > cutoff;
        partition_name := r.relname;
        EXECUTE format('SELECT count(*) FROM raw.%I', r.relname) INTO row_count;
        IF NOT dry_run THEN
            EXECUTE format('DROP TABLE raw.%I', r.relname);
        END IF;
        RETURN NEXT;
    END LOOP;
    partition_name := 'webhook_event_default';
    IF dry_run THEN
        SELECT count(*) INTO row_count FROM raw.webhook_event_default WHERE received_at < cutoff;
    ELSE
        DELETE FROM raw.webhook_event_default WHERE received_at < cutoff;
        GET DIAGNOSTICS row_count = ROW_COUNT;
        DELETE FROM raw.webhook_event_key WHERE received_at < cutoff;
    END IF;
    IF row_count > 0 THEN
        RETURN NEXT;
    END IF;
END
$$;

-- the key table holds numbers (dedupe keys): classified, readable by pii_reader only
SELECT ops.classify_column('raw', 'webhook_event_key', 'dedupe_key', 'pii');
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pii_reader') THEN
        GRANT SELECT ON raw.webhook_event_key, raw.webhook_event TO pii_reader;
    END IF;
END
$$;
