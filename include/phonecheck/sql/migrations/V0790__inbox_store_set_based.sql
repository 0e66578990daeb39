-- V0790 The receiver's inbox writes, set-based (docs/receiver.md, "Speed"). Same functions, same
-- arguments, same results and the same guarantees as V0710; what changes is the work per push.
--
-- * raw.store_webhook_events (group commit: every delivery waiting at one moment in one call)
--   inserts the batch's keys in one statement and its new rows in one statement, instead of one
--   PL/pgSQL call per key; only duplicates (a vendor retry) are counted row by row, in key
--   order as before (concurrent batches lock rows in the same order).
-- * The key-registering trigger on raw.webhook_event is skipped while these functions insert
--   (they have registered the key themselves, one statement earlier, with the same event_id):
--   before, every stored push registered its key twice and looked it up once more. Any other
--   insert still goes through the trigger, so a duplicate key is refused whoever writes. The
--   switch is a transaction-local setting these functions turn on and off around their own
--   insert; an error inside undoes it with the transaction (or savepoint).

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
        PERFORM set_config('phonecheck.inbox_key_registered', 'on', true);
        INSERT INTO raw.webhook_event AS e
            (event_id, endpoint, vendor, dedupe_key, content_type, body, query_string, payload,
             parse_status, parse_error, received_at, last_received_at, via_spool, delivery_count)
        VALUES (event_id, p_endpoint, p_vendor, p_dedupe_key, p_content_type, p_body, p_query_string,
                p_payload, p_parse_status, p_parse_error, p_received_at,
                coalesce(p_last_received_at, p_received_at), p_via_spool, greatest(p_deliveries, 1));
        PERFORM set_config('phonecheck.inbox_key_registered', 'off', true);
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

CREATE OR REPLACE FUNCTION raw.store_webhook_events(
    p_endpoints text[], p_vendors text[], p_dedupe_keys text[], p_content_types text[], p_bodies bytea[],
    p_query_strings text[], p_payloads text[], p_parse_statuses text[], p_parse_errors text[],
    p_received_ats timestamptz[])
RETURNS TABLE (endpoint text, dedupe_key text, event_id bigint, inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    k_endpoints text[];
    k_keys text[];
    k_counts integer[];
    k_last timestamptz[];
    k_new_ids bigint[];
    i integer;
    found_id bigint;
    stored_at timestamptz;
BEGIN
    PERFORM set_config('phonecheck.inbox_key_registered', 'on', true);
    -- One statement: the batch's distinct keys (first delivery's content, delivery count, latest
    -- receive time), registered in key order; the keys that were new get their row.
    WITH b AS (
        SELECT DISTINCT ON (u.endpoint, u.dedupe_key) u.*,
               count(*) OVER w AS n, max(u.received_at) OVER w AS last_at
        FROM unnest(p_endpoints, p_vendors, p_dedupe_keys, p_content_types, p_bodies, p_query_strings,
                    p_payloads, p_parse_statuses, p_parse_errors, p_received_ats) WITH ORDINALITY
             AS u(endpoint, vendor, dedupe_key, content_type, body, query_string, payload,
                  parse_status, parse_error, received_at, ord)
        WINDOW w AS (PARTITION BY u.endpoint, u.dedupe_key)
        ORDER BY u.endpoint, u.dedupe_key, u.ord
    ), registered AS (
        INSERT INTO raw.webhook_event_key AS k (endpoint, dedupe_key, event_id, received_at)
        SELECT b.endpoint, b.dedupe_key, nextval('raw.webhook_event_id_seq'), b.received_at
        FROM b ORDER BY b.endpoint, b.dedupe_key
        ON CONFLICT ON CONSTRAINT webhook_event_key_pkey DO NOTHING
        RETURNING k.endpoint, k.dedupe_key, k.event_id
    ), stored AS (
        INSERT INTO raw.webhook_event
            (event_id, endpoint, vendor, dedupe_key, content_type, body, query_string, payload,
             parse_status, parse_error, received_at, last_received_at, via_spool, delivery_count)
        SELECT r.event_id, b.endpoint, b.vendor, b.dedupe_key, b.content_type, b.body, b.query_string,
               b.payload::jsonb, b.parse_status, b.parse_error, b.received_at, b.last_at, false, b.n
        FROM b JOIN registered r ON r.endpoint = b.endpoint AND r.dedupe_key = b.dedupe_key
        RETURNING 1
    )
    SELECT array_agg(b.endpoint ORDER BY b.endpoint, b.dedupe_key),
           array_agg(b.dedupe_key ORDER BY b.endpoint, b.dedupe_key),
           array_agg(b.n::integer ORDER BY b.endpoint, b.dedupe_key),
           array_agg(b.last_at ORDER BY b.endpoint, b.dedupe_key),
           array_agg(r.event_id ORDER BY b.endpoint, b.dedupe_key)
    INTO k_endpoints, k_keys, k_counts, k_last, k_new_ids
    FROM b LEFT JOIN registered r ON r.endpoint = b.endpoint AND r.dedupe_key = b.dedupe_key;
    PERFORM set_config('phonecheck.inbox_key_registered', 'off', true);

    -- Keys stored before (a retry): count the deliveries on their row, in key order. A later
    -- statement sees a key a concurrent batch committed while this one waited for it.
    FOR i IN 1 .. coalesce(array_length(k_keys, 1), 0) LOOP
        endpoint := k_endpoints[i];
        dedupe_key := k_keys[i];
        IF k_new_ids[i] IS NOT NULL THEN
            event_id := k_new_ids[i];
            inserted := true;
        ELSE
            SELECT k.event_id, k.received_at INTO found_id, stored_at
            FROM raw.webhook_event_key k WHERE k.endpoint = k_endpoints[i] AND k.dedupe_key = k_keys[i];
            UPDATE raw.webhook_event AS e
            SET delivery_count = e.delivery_count + k_counts[i],
                last_received_at = greatest(e.last_received_at, k_last[i])
            WHERE e.event_id = found_id AND e.received_at = stored_at;
            event_id := found_id;
            inserted := false;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

DROP TRIGGER IF EXISTS webhook_event_register_key ON raw.webhook_event;
CREATE TRIGGER webhook_event_register_key BEFORE INSERT ON raw.webhook_event
    FOR EACH ROW
    WHEN (current_setting('phonecheck.inbox_key_registered', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION raw.webhook_event_register_key();
