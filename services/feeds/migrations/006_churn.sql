-- Tables that change about once per prompt revision (hundreds per second under load), tuned so that
-- autovacuum's rounds stay short. They ran every 10 s under the live bench's load, and a round's
-- ANALYZE/VACUUM work (0.5-1 s on two cores) showed as the live path's slowest samples.
--
-- Payloads are read by key, never filtered or joined on: no planner statistics for them (ANALYZE
-- sorted 30,000 JSON documents per table for nothing: 350 ms on changes, 250 ms on cap_messages).
-- `changes` is only ever read by seq (its key): none for any other column.
ALTER TABLE changes
    ALTER COLUMN prompt_id SET STATISTICS 0, ALTER COLUMN kind SET STATISTICS 0,
    ALTER COLUMN area_id SET STATISTICS 0, ALTER COLUMN area_kind SET STATISTICS 0,
    ALTER COLUMN ward_code SET STATISTICS 0, ALTER COLUMN street_ids SET STATISTICS 0,
    ALTER COLUMN sensitivity SET STATISTICS 0, ALTER COLUMN entry SET STATISTICS 0;
ALTER TABLE cap_messages ALTER COLUMN event SET STATISTICS 0, ALTER COLUMN refs SET STATISTICS 0;
-- Keys and dates of these append-only logs: a tenth of the default statistics (ANALYZE samples 3,000
-- rows instead of 30,000), plenty for lookups by key.
ALTER TABLE changes ALTER COLUMN seq SET STATISTICS 10;
ALTER TABLE cap_messages
    ALTER COLUMN identifier SET STATISTICS 10, ALTER COLUMN prompt_id SET STATISTICS 10,
    ALTER COLUMN revision SET STATISTICS 10, ALTER COLUMN msg_type SET STATISTICS 10,
    ALTER COLUMN sent SET STATISTICS 10;
ALTER TABLE prompts ALTER COLUMN event SET STATISTICS 0;
-- A prompt's row is rewritten at each revision: half of each page is kept free so the new version
-- fits beside the old (a HOT update, no index entries), and the street index takes its entries
-- directly rather than through a pending list that VACUUM then merges in one go (480 ms).
ALTER TABLE prompts SET (fillfactor = 50);
ALTER INDEX prompts_street_ids SET (fastupdate = off);
