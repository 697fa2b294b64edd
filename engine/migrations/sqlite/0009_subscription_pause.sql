-- A subscription paused because a plugin said its configuration is wrong
-- (`invalid-config`): why, and since when. Its pending deliveries are held
-- (due at the end of time) until an administrator resumes it.

ALTER TABLE subscriptions ADD COLUMN paused_reason TEXT;
ALTER TABLE subscriptions ADD COLUMN paused_at BIGINT;
