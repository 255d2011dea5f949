-- "I can help" responses credited to each organisation whose way to help the prompt linked when the
-- response was counted (so an organisation's total does not shrink when a prompt is later retired).
CREATE TABLE organisation_responses (
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    month           date NOT NULL,
    responses       integer NOT NULL,
    PRIMARY KEY (organisation_id, month)
);

-- Credit what was counted before this table existed, from the prompts' latest links.
INSERT INTO organisation_responses (organisation_id, month, responses)
SELECT o.id, date_trunc('month', c.since)::date, sum(c.responses)::int
FROM response_counts c
JOIN prompts p USING (prompt_id)
CROSS JOIN LATERAL jsonb_array_elements(COALESCE(p.prompt->'opportunities', '[]'::jsonb)) l
JOIN organisations o ON o.id::text = l->>'organisation_id'
GROUP BY 1, 2;
