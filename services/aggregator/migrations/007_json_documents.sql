-- A published need's content and payload are written at each change and only ever read whole (the
-- content is compared in Python): `json` keeps them as the text written (checked to be JSON), where
-- `jsonb` parsed each into its binary form on the way in and printed it back on the way out:
-- docs/design/performance.md.
ALTER TABLE published ALTER COLUMN content TYPE json USING content::json;
ALTER TABLE published ALTER COLUMN payload TYPE json USING payload::json;
