-- The console's own tables: operators, their sessions, the audit of every action, dead-letter decisions.

CREATE TABLE operators (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    password_hash text NOT NULL,               -- scrypt$n$r$p$salt$hash; the password is never stored
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

CREATE TABLE sessions (
    token_hash   text PRIMARY KEY,             -- SHA-256 hex of the cookie's random token
    operator_id  uuid NOT NULL REFERENCES operators (id),
    csrf_token   text NOT NULL,                -- per session, checked on every POST
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);
CREATE INDEX sessions_operator ON sessions (operator_id);

-- Who did what, to what, when, and how it went; never a secret, key or council reference.
CREATE TABLE audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    username text NOT NULL,                    -- as typed at a failed sign-in, '-' when unknown
    action   text NOT NULL,
    target   text NOT NULL DEFAULT '',
    outcome  text NOT NULL CHECK (outcome IN ('done', 'failed', 'refused')),
    detail   text NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at DESC);

-- Dead letters an operator replayed or discarded (by their place on the dead-letter topic).
CREATE TABLE dead_letter_decisions (
    partition  integer NOT NULL,
    "offset"   bigint NOT NULL,
    decision   text NOT NULL CHECK (decision IN ('replayed', 'discarded')),
    username   text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, "offset")
);
