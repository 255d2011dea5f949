-- Each poll of prompts.v1 reads the latest CAP message of the prompts it met (the next message refers
-- to it). In the order that defines "latest", so that read is one index entry per prompt: with the
-- old (prompt_id, sent) index it read and sorted every revision's message, a cost that grew with
-- each revision (and, on a young table without statistics, a scan of the whole table).
CREATE INDEX cap_messages_latest ON cap_messages (prompt_id, sent DESC, revision DESC);
DROP INDEX cap_messages_prompt;
