-- The signals of a subject are looked up by equality only (a withdrawal's rows in the row lock, key
-- rotation's re-keying, the purge), never by range or order: a hash index of the subject serves them
-- all. Its entries are 4-byte hashes instead of the 64-character pseudonym and the category, so it
-- is ~a quarter of the btree's size (33 MB against 123 MB at 800k signals) and cheaper to insert into,
-- and every signal inserts an entry. Measured on `bench.profile_aggregator 1000000`, alternated
-- (docs/design/performance.md): PostgreSQL's CPU per event 21.5-24.7 us against 25.4-28.2 us, and
-- ~12% less WAL (690 MB against 790 MB). The category, no longer in the index, is checked on the row,
-- which every one of these lookups reads anyway (for its street and time).
DROP INDEX signals_subject;
CREATE INDEX signals_subject ON signals USING hash (subject_key);
