-- V0900 catalogue wording: column and table comments name the vendors' documents by the short
-- names of docs/vendors/README.md instead of labels of documents outside the repository.
-- Earlier migrations now carry the new wording; this rewrites the comments of warehouses that
-- applied them before (a fresh warehouse has nothing to change). Classification tags stay.
DO $$
DECLARE
    item record;
    wording text;
    replacements constant text[][] := ARRAY[
        ARRAY['SEED\s000', 'NXCLOUD result-push doc'],
        ARRAY['SEED\s001', 'NXCLOUD query-API doc'],
        ARRAY['SEED\s002', 'AccuAuth task-result doc'],
        ARRAY['SEED\s003', 'NXCLOUD voice-receipt doc'],
        ARRAY['SEED\s004', 'NXCLOUD call-record doc'],
        ARRAY['\(see api[-]facts\.md\s§[0-9.]+\)', '(docs/vendors/nxcloud.md)'],
        ARRAY['api[-]facts(\.md)?\s§[0-9.]+', 'docs/vendors/nxcloud.md']
    ];
    i integer;
BEGIN
    FOR item IN
        SELECT n.nspname AS schema_name, c.relname AS table_name, a.attname AS column_name,
               c.relkind, d.description
        FROM pg_description d
        JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
        WHERE n.nspname IN ('raw', 'telco', 'mart', 'ops', 'dq', 'analyst')
          AND d.description ~ '(SEED\s00[0-4]|api[-]facts)'
    LOOP
        wording := item.description;
        FOR i IN 1 .. array_length(replacements, 1) LOOP
            wording := regexp_replace(wording, replacements[i][1], replacements[i][2], 'g');
        END LOOP;
        IF item.column_name IS NOT NULL THEN
            EXECUTE format('COMMENT ON COLUMN %I.%I.%I IS %L', item.schema_name, item.table_name,
                           item.column_name, wording);
        ELSIF item.relkind = 'v' THEN
            EXECUTE format('COMMENT ON VIEW %I.%I IS %L', item.schema_name, item.table_name, wording);
        ELSE
            EXECUTE format('COMMENT ON TABLE %I.%I IS %L', item.schema_name, item.table_name, wording);
        END IF;
    END LOOP;
END
$$;
