-- The prompter's own tables (schema "prompter"; search_path is set by the migration runner).

-- Ways to help registered by the council and VCS partners. `contact` is the ORGANISATION's public
-- contact (a group email or phone); no resident's personal data belongs anywhere in this table.
CREATE TABLE opportunities (
    id           uuid PRIMARY KEY,
    title        text NOT NULL,
    organisation text NOT NULL,
    description  text NOT NULL DEFAULT '',
    url          text,
    contact      text,
    categories   text[] NOT NULL,
    ward_codes   text[] NOT NULL DEFAULT '{}',
    street_ids   text[] NOT NULL DEFAULT '{}',
    lat          double precision,
    lon          double precision,
    radius_m     double precision,
    times        text,
    starts_on    date,
    ends_on      date,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz
);
CREATE INDEX opportunities_categories ON opportunities USING gin (categories) WHERE retired_at IS NULL;

-- The latest publishable state of each street-needs key; `active` false after a tombstone.
CREATE TABLE needs (
    prompt_id  text PRIMARY KEY,               -- the street-needs key, {area_id}:{category}
    category   text NOT NULL,
    ward_code  text,
    street_ids text[] NOT NULL,
    version    integer NOT NULL,
    need       jsonb NOT NULL,                 -- the StreetNeedChanged as received
    active     boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX needs_active_category ON needs (category) WHERE active;

-- What was last published per prompt: a new revision only when content_hash changes.
CREATE TABLE prompts (
    prompt_id    text PRIMARY KEY,
    revision     integer NOT NULL,
    content_hash text,                         -- null once retired, so a comeback republishes
    status       text NOT NULL CHECK (status IN ('published', 'retired')),
    area_id      text NOT NULL,
    category     text NOT NULL,
    ward_code    text,
    prompt       jsonb NOT NULL,               -- the last PromptPublished or PromptRetired
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- "I can help" responses: one row per response id makes counting idempotent under redelivery.
CREATE TABLE responses_seen (
    response_id  uuid PRIMARY KEY,
    prompt_id    text NOT NULL,
    responded_on date NOT NULL
);

CREATE TABLE response_counts (
    prompt_id  text PRIMARY KEY,
    area_id    text NOT NULL,
    category   text NOT NULL,
    ward_code  text,
    responses  integer NOT NULL,
    since      date NOT NULL,                  -- the day of the first response
    last_on    date NOT NULL
);
CREATE INDEX response_counts_ward ON response_counts (ward_code);
