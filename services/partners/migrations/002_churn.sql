-- `needs` is rewritten and `needs_history` takes a row at each change of a need (hundreds per second
-- under load), tuned so that autovacuum's rounds stay short: ANALYZE of the history took 0.6-1.1 s
-- every few rounds under the live probe's load, on two cores shared with the live path (the feeds
-- and aggregator tables were tuned the same way).
--
-- Payloads are read by key, never filtered or joined on: no planner statistics for them (ANALYZE
-- sorted 30,000 JSON documents for nothing). The history's other columns: a tenth of the default
-- statistics (3,000 rows sampled instead of 30,000), plenty for its cursor, key and area lookups.
ALTER TABLE needs ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE needs_history
    ALTER COLUMN payload SET STATISTICS 0,
    ALTER COLUMN key SET STATISTICS 10, ALTER COLUMN area_id SET STATISTICS 10,
    ALTER COLUMN category SET STATISTICS 10, ALTER COLUMN area_kind SET STATISTICS 10,
    ALTER COLUMN ward_code SET STATISTICS 10, ALTER COLUMN version SET STATISTICS 10,
    ALTER COLUMN change SET STATISTICS 10, ALTER COLUMN changed_at SET STATISTICS 10,
    ALTER COLUMN id SET STATISTICS 10, ALTER COLUMN recorded_at SET STATISTICS 10;
