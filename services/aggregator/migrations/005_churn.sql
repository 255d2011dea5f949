-- `published` is rewritten at each change of a need (hundreds per second under load): tuned so that
-- autovacuum's rounds stay short (they showed as the live path's slowest samples).
-- Its documents are read by key, never filtered or joined on: no planner statistics for them.
ALTER TABLE published ALTER COLUMN content SET STATISTICS 0, ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE outbox ALTER COLUMN value SET STATISTICS 0, ALTER COLUMN key SET STATISTICS 0;
-- Half of each page kept free for the next version of a row (a HOT update, no index entries); the
-- street index takes its entries directly, not through a pending list VACUUM merges in one go.
ALTER TABLE published SET (fillfactor = 50);
ALTER INDEX published_streets SET (fastupdate = off);
-- Kept counts, read and written by key only: a tenth of the default statistics (ANALYZE samples 3,000
-- rows instead of 30,000).
ALTER TABLE place_cells
    ALTER COLUMN street_id SET STATISTICS 10, ALTER COLUMN category SET STATISTICS 10,
    ALTER COLUMN open SET STATISTICS 10, ALTER COLUMN closed SET STATISTICS 10,
    ALTER COLUMN this_window SET STATISTICS 10, ALTER COLUMN last_window SET STATISTICS 10,
    ALTER COLUMN valid_from SET STATISTICS 10, ALTER COLUMN valid_until SET STATISTICS 10;
