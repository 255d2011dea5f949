-- Who holds a claimed row's lease: a sender renews it, by owner, just before each send, so a row whose
-- lease ran out under a slow sender (and was claimed by another) is not sent by both.
ALTER TABLE outbox ADD COLUMN lease_owner uuid;
