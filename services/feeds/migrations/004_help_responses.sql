-- "I can help" counted once per resident per prompt. The id is uuid5(random first-party cookie,
-- prompt id): it names no one, and the same id is sent on resident-responses.v1 so the prompter
-- de-duplicates too. Kept as long as the prompt's count (response_counts): they name no one.
CREATE TABLE help_responses (
    response_id  uuid PRIMARY KEY,
    prompt_id    text NOT NULL,
    responded_on date NOT NULL
);
CREATE INDEX help_responses_prompt ON help_responses (prompt_id);
