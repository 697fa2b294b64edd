-- Signing-secret rotation: the secret an endpoint had before its last
-- rotation, still used beside the new one until the grace period ends, so
-- receivers can switch over without losing a delivery.

ALTER TABLE endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE endpoints ADD COLUMN previous_secret_expires_at BIGINT;
