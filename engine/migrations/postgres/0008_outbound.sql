-- How Weft reaches an endpoint's receiver: its authentication (API key,
-- Basic, bearer, OAuth 2.0 client credentials, per-request JWT) and TLS
-- settings (a CA bundle, a client certificate and key), each as sealed JSON;
-- and how hard it may be pressed (a rate limit, as JSON, and a maximum of
-- deliveries in flight).

ALTER TABLE endpoints ADD COLUMN auth TEXT;
ALTER TABLE endpoints ADD COLUMN tls TEXT;
ALTER TABLE endpoints ADD COLUMN rate_limit TEXT;
ALTER TABLE endpoints ADD COLUMN max_concurrency BIGINT;
