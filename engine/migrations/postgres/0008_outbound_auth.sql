-- How Weft authenticates to an endpoint's receiver (API key, Basic, bearer,
-- OAuth 2.0 client credentials, per-request JWT), as sealed JSON.

ALTER TABLE endpoints ADD COLUMN auth TEXT;
