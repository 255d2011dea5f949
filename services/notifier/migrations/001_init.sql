-- The notifier's own tables: the only place in streetneeds that holds residents' e-mail addresses.

-- One alert: an address, what it follows (resolved to gazetteer streets, person units and wards; the
-- point of a radius alert is not kept), which categories (empty = all) and how often.
CREATE TABLE subscriptions (
    subscription_id    uuid PRIMARY KEY,
    email              text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('street', 'streets', 'ward', 'area')),
    label              text NOT NULL,
    street_ids         text[] NOT NULL,
    unit_ids           text[] NOT NULL,
    ward_codes         text[] NOT NULL,
    categories         text[] NOT NULL,
    frequency          text NOT NULL CHECK (frequency IN ('instant', 'daily', 'weekly')),
    status             text NOT NULL CHECK (status IN ('pending', 'active')),
    confirm_sha256     bytea NOT NULL UNIQUE,     -- the confirmation token is stored only hashed
    confirm_expires_at timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    confirmed_at       timestamptz
);
CREATE INDEX subscriptions_email ON subscriptions (email);
CREATE INDEX subscriptions_streets ON subscriptions USING gin (street_ids) WHERE status = 'active';
CREATE INDEX subscriptions_units ON subscriptions USING gin (unit_ids) WHERE status = 'active';
CREATE INDEX subscriptions_wards ON subscriptions USING gin (ward_codes) WHERE status = 'active';
CREATE INDEX subscriptions_pending ON subscriptions (confirm_expires_at) WHERE status = 'pending';

-- Addresses that bounced or complained, as HMAC(link secret, address): never mailed again, not readable.
CREATE TABLE suppressed (
    email_hmac    bytea PRIMARY KEY,
    reason        text NOT NULL CHECK (reason IN ('bounce', 'complaint')),
    suppressed_at timestamptz NOT NULL DEFAULT now()
);

-- Every prompt change consumed from prompts.v1 (prompt_id + revision): the de-duplication of the
-- consumer, and what digests are built from.
CREATE TABLE changes (
    prompt_id    text NOT NULL,
    revision     int NOT NULL,
    area_id      text NOT NULL,
    area_kind    text NOT NULL,
    street_ids   text[] NOT NULL,
    category     text NOT NULL,
    sensitivity  text NOT NULL,
    event        jsonb NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (prompt_id, revision)
);
CREATE INDEX changes_received ON changes (received_at);

-- Prompts retired since (a digest leaves them out).
CREATE TABLE retired (
    prompt_id   text PRIMARY KEY,
    retired_at  timestamptz NOT NULL
);

-- Mails to send. One row per (subscription, prompt, revision) for instant alerts and per
-- (subscription, period) for digests: the unique constraints are what make "never twice" hold.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    subscription_id  uuid NOT NULL REFERENCES subscriptions ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('instant', 'digest')),
    prompt_id        text,
    revision         int,
    period           text,
    period_start     timestamptz,
    period_end       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         int NOT NULL DEFAULT 0,
    lease_until      timestamptz,
    not_before       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    failed_at        timestamptz,
    last_error       text,
    UNIQUE (subscription_id, prompt_id, revision),
    UNIQUE (subscription_id, period),
    CHECK ((kind = 'instant') = (prompt_id IS NOT NULL AND revision IS NOT NULL)),
    CHECK ((kind = 'digest') = (period IS NOT NULL))
);
CREATE INDEX outbox_due ON outbox (id) WHERE sent_at IS NULL AND failed_at IS NULL;
