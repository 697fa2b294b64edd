-- How Weft authenticates to an endpoint's receiver (API key, Basic, bearer,
-- OAuth 2.0 client credentials, per-request JWT) and its TLS settings (a CA
-- bundle, a client certificate and key), each as sealed JSON.

ALTER TABLE endpoints ADD COLUMN auth TEXT;
ALTER TABLE endpoints ADD COLUMN tls TEXT;
