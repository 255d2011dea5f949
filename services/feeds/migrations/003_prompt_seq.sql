-- The seq of each prompt's latest change, so a feed's validator (ETag) comes from one small query:
-- (max seq, count) over the prompts a selection can see changes whenever any of them does, because
-- every change takes a fresh, larger seq (numbered in commit order) and prompts are never deleted.
ALTER TABLE prompts ADD COLUMN seq bigint NOT NULL DEFAULT 0;
UPDATE prompts p SET seq = c.seq
  FROM (SELECT prompt_id, max(seq) AS seq FROM changes GROUP BY prompt_id) c
 WHERE c.prompt_id = p.prompt_id;
