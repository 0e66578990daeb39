-- V0100 NXCLOUD number check: fallback price list for the cost estimate, and an
-- index so the deferrable wait and the loads find a batch's pushes in the inbox quickly.
-- Re-runnable.

CREATE TABLE IF NOT EXISTS ops.nxcloud_price_list (
    region_code  text          NOT NULL,
    check_level  integer       NOT NULL,
    price        numeric(12,4) NOT NULL CHECK (price >= 0),
    currency     text          NOT NULL,
    note         text,
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (region_code, check_level)
);
COMMENT ON TABLE ops.nxcloud_price_list IS 'Prices per number used by the NXCLOUD cost estimate when no result of the last 30 days gives one. Operators keep contract prices here.';
COMMENT ON COLUMN ops.nxcloud_price_list.region_code IS 'ISO 3166-1 alpha-2 region of the numbers, or * for any region without its own row.';
COMMENT ON COLUMN ops.nxcloud_price_list.check_level IS 'NXCLOUD checkLevel: 1 basic, 4 call, 5 HLR.';
COMMENT ON COLUMN ops.nxcloud_price_list.price IS 'Price per checked number, 4 decimal places, in currency.';
COMMENT ON COLUMN ops.nxcloud_price_list.currency IS 'ISO 4217 currency of price.';
COMMENT ON COLUMN ops.nxcloud_price_list.note IS 'Where the price comes from (contract, vendor example...).';
COMMENT ON COLUMN ops.nxcloud_price_list.updated_at IS 'When the price was last set.';

-- Conservative defaults: the NXCLOUD result-push doc example prices (the highest the vendor documents show),
-- so an unknown region is over- rather than under-estimated against a budget.
INSERT INTO ops.nxcloud_price_list (region_code, check_level, price, currency, note) VALUES
    ('*', 1, 0.1912, 'USD', 'default: NXCLOUD result-push doc basic example price'),
    ('*', 4, 1.0231, 'USD', 'default: NXCLOUD result-push doc call version example price'),
    ('*', 5, 0.9230, 'USD', 'default: NXCLOUD result-push doc HLR example price')
ON CONFLICT (region_code, check_level) DO NOTHING;

CREATE INDEX IF NOT EXISTS webhook_event_nxcloud_batch_idx
    ON raw.webhook_event ((payload->>'batchNo'))
    WHERE endpoint = 'nxcloud_number_check';
