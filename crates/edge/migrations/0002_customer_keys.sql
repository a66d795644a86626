-- A customer's key names the customer it belongs to: its reads are limited to that
-- customer's records.
ALTER TABLE api_keys ADD COLUMN customer_id TEXT;
