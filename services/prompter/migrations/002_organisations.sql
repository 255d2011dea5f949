-- Organisations own their ways to help; the platforms directory; residents' consented contact
-- details for one organisation (never in Kafka); a history of needs for the public impact pages.

-- VCS groups and council teams. Keys are shown once; only their SHA-256 is kept (shared/keys.py).
CREATE TABLE organisations (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('vcs', 'council')),
    council_admin boolean NOT NULL DEFAULT false,   -- may read every change and manage platforms
    key_hash      text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CHECK (NOT council_admin OR kind = 'council')
);

-- Opportunities registered before organisations existed have no owner: only the operator sees them.
ALTER TABLE opportunities
    ADD COLUMN organisation_id uuid REFERENCES organisations (id),
    ADD COLUMN what            text NOT NULL DEFAULT '',
    ADD COLUMN time_needed     text,
    ADD COLUMN dbs_needed      boolean NOT NULL DEFAULT false,
    ADD COLUMN contact_email   text,
    ADD COLUMN contact_phone   text,
    ADD COLUMN status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'retired'));
UPDATE opportunities SET status = 'retired' WHERE retired_at IS NOT NULL;
CREATE INDEX opportunities_organisation ON opportunities (organisation_id);

-- Every change to an opportunity: who, when, what (a JSON diff of the fields that changed).
CREATE TABLE opportunity_changes (
    id              bigserial PRIMARY KEY,
    opportunity_id  uuid NOT NULL REFERENCES opportunities (id),
    organisation_id uuid REFERENCES organisations (id),
    actor           text NOT NULL,                -- the organisation's name, or 'operator'
    action          text NOT NULL CHECK (action IN ('created', 'updated', 'paused', 'resumed', 'retired')),
    diff            jsonb NOT NULL,               -- {"field": {"from": ..., "to": ...}}
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX opportunity_changes_by_opportunity ON opportunity_changes (opportunity_id, id);

-- Platforms that already exist. 'directory' rows come from data/platforms.csv (reloaded at start;
-- the council's on/off choice survives reloads); 'council' rows are the council's own additions.
CREATE TABLE platforms (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL,
    url         text NOT NULL,
    categories  text[] NOT NULL,
    coverage    text NOT NULL CHECK (coverage IN ('national', 'london', 'borough')),
    source      text NOT NULL CHECK (source IN ('directory', 'council')),
    enabled     boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A resident's first name and email for ONE organisation, with the consent text they saw. Shown to
-- that organisation only; deleted when it marks the offer handed over, or after 30 days (purge loop).
CREATE TABLE help_offers (
    id              uuid PRIMARY KEY,
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    opportunity_id  uuid REFERENCES opportunities (id),
    prompt_id       text NOT NULL,
    first_name      text NOT NULL,
    email           text NOT NULL,
    consent_text    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX help_offers_organisation ON help_offers (organisation_id, created_at);
CREATE INDEX help_offers_created ON help_offers (created_at);

-- How many offers each organisation received and handed over per month (no personal data).
CREATE TABLE offer_counts (
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    month           date NOT NULL,
    received        integer NOT NULL DEFAULT 0,
    handed_over     integer NOT NULL DEFAULT 0,
    expired         integer NOT NULL DEFAULT 0,
    PRIMARY KEY (organisation_id, month)
);

-- What passed disclosure on street-needs.v1, as it changed (for impact pages): place categories with
-- their exact count, person categories with their released band or ward trend only.
CREATE TABLE needs_history (
    id          bigserial PRIMARY KEY,
    prompt_id   text NOT NULL,
    category    text NOT NULL,
    sensitivity text NOT NULL,
    ward_code   text,
    active      boolean NOT NULL,
    count       integer,
    band        text,
    trend       text,
    on_day      date NOT NULL,
    CHECK (sensitivity = 'place' OR count IS NULL)
);
CREATE INDEX needs_history_ward ON needs_history (ward_code, on_day);

-- When each prompt was first published (the "before/after prompts started" line of impact pages).
ALTER TABLE prompts ADD COLUMN first_published_on date;
UPDATE prompts SET first_published_on = updated_at::date;

-- Signed-in organisations on the web form: the cookie holds a random token, only its hash is kept.
CREATE TABLE org_sessions (
    token_hash      text PRIMARY KEY,
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    csrf_token      text NOT NULL,
    expires_at      timestamptz NOT NULL
);
