-- Rewritten at each change of a need (hundreds per second under load): documents read by key, never
-- filtered or joined on, get no planner statistics (autovacuum's ANALYZE sorted them for nothing),
-- and half of each page is kept free for the next version of a row (a HOT update).
ALTER TABLE needs ALTER COLUMN need SET STATISTICS 0;
ALTER TABLE prompts ALTER COLUMN prompt SET STATISTICS 0;
ALTER TABLE needs SET (fillfactor = 50);
ALTER TABLE prompts SET (fillfactor = 50);
-- The history of needs grows by one row per change: a tenth of the default statistics (ANALYZE samples
-- 3,000 rows instead of 30,000), plenty for the impact pages' reads by ward and day.
ALTER TABLE needs_history
    ALTER COLUMN id SET STATISTICS 10, ALTER COLUMN prompt_id SET STATISTICS 10,
    ALTER COLUMN category SET STATISTICS 10, ALTER COLUMN sensitivity SET STATISTICS 10,
    ALTER COLUMN ward_code SET STATISTICS 10, ALTER COLUMN active SET STATISTICS 10,
    ALTER COLUMN count SET STATISTICS 10, ALTER COLUMN band SET STATISTICS 10,
    ALTER COLUMN trend SET STATISTICS 10, ALTER COLUMN on_day SET STATISTICS 10;
