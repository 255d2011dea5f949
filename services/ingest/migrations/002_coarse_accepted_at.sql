-- docs/privacy.md rule 1: when a signal was accepted is kept no finer than the day, like a person
-- signal's own time (an exact time beside its event id would undo that coarsening).
ALTER TABLE accepted_signals
    ALTER COLUMN accepted_at SET DEFAULT (date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC');
UPDATE accepted_signals
    SET accepted_at = date_trunc('day', accepted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
