-- When each subscription's feed was last read, to the day only (when a resident reads is not ours to
-- know more finely), so `streetneeds feeds purge-subscriptions` can delete ones nobody reads.
-- Existing subscriptions count as read today: they get the full grace period.
ALTER TABLE subscriptions ADD COLUMN last_read_on date NOT NULL DEFAULT current_date;
