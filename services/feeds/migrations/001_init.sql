-- The feeds service's own tables. Prompts arrive already disclosure-controlled on prompts.v1.

-- Current state of each prompt (retired ones stay, marked, so CAP can send a Cancel that
-- references the earlier alert and feeds' Last-Modified moves when an entry disappears).
CREATE TABLE prompts (
    prompt_id     text PRIMARY KEY,
    revision      int NOT NULL,
    area_id       text NOT NULL,
    area_kind     text NOT NULL,
    ward_code     text,
    street_ids    text[] NOT NULL,
    category      text NOT NULL,
    sensitivity   text NOT NULL,
    event         jsonb NOT NULL,          -- the PromptPublished as received
    retired       boolean NOT NULL DEFAULT false,
    changed_at    timestamptz NOT NULL     -- day precision for person categories
);
CREATE INDEX prompts_street_ids ON prompts USING gin (street_ids);
CREATE INDEX prompts_area ON prompts (area_id);
CREATE INDEX prompts_ward ON prompts (ward_code);

-- Every visible change, in order: the SSE event ids (resumption with Last-Event-ID).
CREATE TABLE changes (
    seq           bigserial PRIMARY KEY,
    prompt_id     text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('published', 'retired')),
    area_id       text NOT NULL,
    area_kind     text NOT NULL,
    ward_code     text,
    street_ids    text[] NOT NULL,
    sensitivity   text NOT NULL,
    entry         jsonb NOT NULL
);

-- CAP messages for place categories, one row per message (Alert, Update, Cancel).
CREATE TABLE cap_messages (
    identifier    text PRIMARY KEY,
    prompt_id     text NOT NULL,
    revision      int NOT NULL,
    msg_type      text NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    sent          timestamptz NOT NULL,
    refs          text,                    -- CAP `references`: "sender,identifier,sent ..."
    event         jsonb NOT NULL           -- the PromptPublished the message describes
);
CREATE INDEX cap_messages_prompt ON cap_messages (prompt_id, sent DESC);

-- Subscriptions: no account, no personal data; the capability token is stored only as SHA-256.
CREATE TABLE subscriptions (
    token_sha256  bytea PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('street', 'streets', 'ward', 'area')),
    label         text NOT NULL,
    street_ids    text[] NOT NULL,
    unit_ids      text[] NOT NULL,
    ward_codes    text[] NOT NULL,
    created_on    date NOT NULL DEFAULT current_date,
    unsubscribed_on date
);

-- "I can help" counts per prompt (the responses themselves go to resident-responses.v1).
CREATE TABLE response_counts (
    prompt_id     text PRIMARY KEY,
    responses     int NOT NULL DEFAULT 0
);
