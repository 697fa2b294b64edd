-- The PostgreSQL twin (../postgres/0013_cluster_limits.sql) lets several nodes
-- hold an endpoint's limits together. A SQLite file has one node, which holds
-- them in memory; the queue gets the column all the same, so that both
-- backends' statements on the queue are one.
ALTER TABLE delivery_queue ADD COLUMN sending BOOLEAN NOT NULL DEFAULT FALSE;
