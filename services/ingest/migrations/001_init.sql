-- Ingest's own tables. No personal data: keys are stored hashed, signals only by their derived id.

CREATE TABLE council_systems (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    council_id      text NOT NULL,
    key_hash        text NOT NULL UNIQUE,      -- hex SHA-256 of the API key; the key itself is never stored
    categories      text[] NOT NULL,
    rate_per_minute integer,                   -- NULL: the service's default
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- One row per signal ever accepted: the exactly-once-in-effect guard (see pipeline.py).
CREATE TABLE accepted_signals (
    event_id    uuid PRIMARY KEY,              -- uuid5 of (council system, council event_id)
    system_id   uuid NOT NULL REFERENCES council_systems (id),
    accepted_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL CHECK (source IN ('http', 'open311', 'kafka'))
);

-- The anonymised, street-level view of Open311 requests: no description, media, coordinates or person.
CREATE TABLE open311_requests (
    service_request_id text PRIMARY KEY,
    council_id         text NOT NULL,
    system_id          uuid NOT NULL REFERENCES council_systems (id),
    event_id           uuid NOT NULL,
    service_code       text NOT NULL,
    street_id          text NOT NULL,
    status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    requested_at       timestamptz NOT NULL,  -- coarsened to the hour
    updated_at         timestamptz NOT NULL   -- coarsened to the hour
);
CREATE INDEX open311_requests_requested_at ON open311_requests (requested_at);
