-- Rewritten at each change of a need (hundreds per second under load): documents read by key, never
-- filtered or joined on, get no planner statistics (autovacuum's ANALYZE sorted them for nothing),
-- and half of each page is kept free for the next version of a row (a HOT update).
ALTER TABLE needs ALTER COLUMN need SET STATISTICS 0;
ALTER TABLE prompts ALTER COLUMN prompt SET STATISTICS 0;
ALTER TABLE needs SET (fillfactor = 50);
ALTER TABLE prompts SET (fillfactor = 50);
