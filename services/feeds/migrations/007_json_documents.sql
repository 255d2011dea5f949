-- The stored documents (a prompt's event, a CAP message's event, a change's feed entry) are written
-- once per prompt revision and only ever read whole, or one field for ordering: `json` keeps them as
-- the text written (checked to be JSON), where `jsonb` parsed each into its binary form on the way in
-- and printed it back on the way out. At three documents per revision that was ~10 us of
-- PostgreSQL's CPU per document in, ~7 us out (2 KB each): measured, docs/design/performance.md.
ALTER TABLE prompts ALTER COLUMN event TYPE json USING event::json;
ALTER TABLE cap_messages ALTER COLUMN event TYPE json USING event::json;
ALTER TABLE changes ALTER COLUMN entry TYPE json USING entry::json;
