-- A street's published needs are found through the areas covering it (the aggregator's gazetteer,
-- `Areas.areas_of_street`), by the primary key: the GIN index on `street_ids` is no longer read.
-- Writing it was the largest single source of WAL under load: every update of a row that could not
-- stay on its page re-logged each of its streets' index entries (~1.2 KB each; ~1.9 MB/s of ~17 MB/s
-- of WAL at 1,000 signals/s, inside the batch transaction that holds the areas' locks).
DROP INDEX IF EXISTS published_streets;
