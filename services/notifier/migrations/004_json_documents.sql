-- A change's event is written once per prompt revision and only ever read whole: `json` keeps it as
-- the text written (checked to be JSON), where `jsonb` parsed it into its binary form on the way in
-- and printed it back on the way out (~10 us of PostgreSQL's CPU in, ~7 us out for 2 KB):
-- docs/design/performance.md.
ALTER TABLE changes ALTER COLUMN event TYPE json USING event::json;
