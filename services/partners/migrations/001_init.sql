-- Partner access: API keys, what arrived on street-needs.v1 (current state and every change), webhooks.

CREATE TABLE partners (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,          -- SHA-256 hex of the key; the key itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Current publishable state: one row per street-needs.v1 key; a tombstone deletes it.
CREATE TABLE needs (
    key         text PRIMARY KEY,              -- {area_id}:{category}
    area_id     text NOT NULL,
    area_kind   text NOT NULL,
    category    text NOT NULL,
    ward_code   text,
    version     integer NOT NULL,
    payload     jsonb NOT NULL,                -- the StreetNeedChanged value as received
    min_lon     double precision,              -- bounding box of the area's gazetteer geometry
    min_lat     double precision,
    max_lon     double precision,
    max_lat     double precision,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX needs_ward ON needs (ward_code, key);
CREATE INDEX needs_category ON needs (category, key);

-- Every change, once per (key, version, change): what partners asked for.
CREATE TABLE needs_history (
    id          bigserial PRIMARY KEY,
    key         text NOT NULL,
    area_id     text NOT NULL,
    category    text NOT NULL,
    area_kind   text,
    ward_code   text,
    version     integer NOT NULL,
    change      text NOT NULL CHECK (change IN ('changed', 'removed')),
    payload     jsonb,                         -- NULL for a removal
    changed_at  timestamptz NOT NULL,          -- published_at, or the minute a removal arrived
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (key, version, change)
);
CREATE INDEX needs_history_changed_at ON needs_history (changed_at, id);
CREATE INDEX needs_history_area ON needs_history (area_id, id);

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    partner_id  uuid NOT NULL REFERENCES partners (id),
    url         text NOT NULL,
    categories  text[] NOT NULL DEFAULT '{}',  -- empty: every category
    wards       text[] NOT NULL DEFAULT '{}',  -- empty: every ward
    secret      text NOT NULL,                 -- whsec_…; needed in clear to sign
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX webhooks_partner ON webhooks (partner_id) WHERE deleted_at IS NULL;

-- The delivery queue: workers claim due rows with FOR UPDATE SKIP LOCKED, so replicas share it.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id),
    history_id      bigint NOT NULL REFERENCES needs_history (id),
    message_id      text NOT NULL,             -- webhook-id header: the same on every retry
    body            text NOT NULL,             -- the exact bytes signed and sent
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    replay          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
