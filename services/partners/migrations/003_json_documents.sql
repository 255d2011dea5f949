-- A need's payload is written at each change (to `needs` and `needs_history`) and only ever read
-- whole: `json` keeps it as the text written (checked to be JSON), where `jsonb` parsed it into its
-- binary form on the way in and printed it back on the way out: docs/design/performance.md.
ALTER TABLE needs ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE needs_history ALTER COLUMN payload TYPE json USING payload::json;
