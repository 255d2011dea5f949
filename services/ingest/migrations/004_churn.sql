-- One row per accepted signal (hundreds per second under load), read by key (duplicates) and counted
-- by day, system and category (the console's volumes): a tenth of the default statistics, so that
-- autovacuum's ANALYZE samples 3,000 rows instead of 30,000 while the table grows.
ALTER TABLE accepted_signals
    ALTER COLUMN event_id SET STATISTICS 10, ALTER COLUMN system_id SET STATISTICS 10,
    ALTER COLUMN accepted_at SET STATISTICS 10, ALTER COLUMN source SET STATISTICS 10,
    ALTER COLUMN category SET STATISTICS 10;
