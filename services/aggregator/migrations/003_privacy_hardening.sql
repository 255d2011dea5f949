-- Key rotation (docs/privacy.md, key rotation): an older pseudonym of a subject -> the pseudonym under the
-- newest key version seen for them. Stored rows are re-keyed to the newest; incoming events are mapped.
CREATE TABLE subject_aliases (
    alias_key   text    PRIMARY KEY,
    subject_key text    NOT NULL,
    key_version integer NOT NULL  -- the version `subject_key` was made with: a newer one wins
);
CREATE INDEX subject_aliases_subject ON subject_aliases (subject_key);

-- The audit of a monthly person release keeps counts by reason, never the units (rule 8): a list of
-- units held back "below threshold" would say which units have 1-7 flagged residents.
CREATE TABLE withheld_counts (
    period      text    NOT NULL,  -- YYYY-MM
    category    text    NOT NULL,
    reason      text    NOT NULL,
    cells       integer NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period, category, reason)
);
INSERT INTO withheld_counts (period, category, reason, cells)
SELECT period, category, reason, count(*) FROM withheld WHERE period ~ '^\d{4}-\d{2}$'
GROUP BY period, category, reason;
DELETE FROM withheld WHERE period ~ '^\d{4}-\d{2}$';

-- Purging ended signals looks them up by time.
CREATE INDEX withdrawals_at ON withdrawals (withdrawn_at);
