-- `changes` takes a row per prompt revision (hundreds per second under load), tuned so that
-- autovacuum's rounds stay short: its ANALYZE took 1.2-1.8 s every few rounds under the live probe's
-- load, on two cores shared with the live path (feeds and aggregator tables were tuned the same way).
--
-- The event is read by key, never filtered or joined on: no planner statistics for it (ANALYZE
-- sorted 30,000 JSON documents for nothing). The other columns: a tenth of the default statistics
-- (3,000 rows sampled instead of 30,000), plenty for lookups by key and the digests' time ranges.
ALTER TABLE changes
    ALTER COLUMN event SET STATISTICS 0,
    ALTER COLUMN prompt_id SET STATISTICS 10, ALTER COLUMN revision SET STATISTICS 10,
    ALTER COLUMN area_id SET STATISTICS 10, ALTER COLUMN area_kind SET STATISTICS 10,
    ALTER COLUMN street_ids SET STATISTICS 10, ALTER COLUMN category SET STATISTICS 10,
    ALTER COLUMN sensitivity SET STATISTICS 10, ALTER COLUMN received_at SET STATISTICS 10;
