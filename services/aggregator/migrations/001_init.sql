-- The aggregator's state. Signal tables are a commutative fold of the signals topic (latest raise per
-- street/category/subject, latest withdrawal per subject/category), so replaying any event again, in
-- any batching, leaves them unchanged. consumer_offsets is written in the same transaction as the fold.

CREATE TABLE signals (
    street_id   text        NOT NULL,
    category    text        NOT NULL,
    subject_key text        NOT NULL,
    raised_at   timestamptz NOT NULL,
    PRIMARY KEY (street_id, category, subject_key)
);
CREATE INDEX signals_subject ON signals (subject_key, category);

CREATE TABLE withdrawals (
    subject_key  text        NOT NULL,
    category     text        NOT NULL,
    withdrawn_at timestamptz NOT NULL,
    PRIMARY KEY (subject_key, category)
);

-- The next offset to read per partition: the position that goes with the fold above.
CREATE TABLE consumer_offsets (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    records     bigint  NOT NULL DEFAULT 0,  -- records applied (exactly once) since the row began
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- The last published value per street-needs key; `live` false after a tombstone.
CREATE TABLE published (
    area_id     text     NOT NULL,
    category    text     NOT NULL,
    sensitivity text     NOT NULL,
    live        boolean  NOT NULL,
    content     jsonb    NOT NULL,  -- the comparable public view (no version/published_at)
    payload     jsonb,              -- the StreetNeedChanged last published (NULL when tombstoned)
    version     integer  NOT NULL,
    since       date     NOT NULL,
    ward_code   text,
    street_ids  text[]   NOT NULL,
    min_lon     double precision, min_lat double precision,
    max_lon     double precision, max_lat double precision,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (area_id, category)
);
CREATE INDEX published_streets ON published USING gin (street_ids) WHERE live;
CREATE INDEX published_ward ON published (ward_code) WHERE live;

-- Transactional outbox: written with the state change, relayed to Kafka, then deleted.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    topic      text  NOT NULL,
    key        bytea,
    value      bytea,            -- NULL is a tombstone
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Monthly person-category releases (rule 5), their stored noise (rule 6) and ledger (rule 6).
CREATE TABLE releases (
    period          text PRIMARY KEY,
    released_at     timestamptz NOT NULL,
    published_cells integer NOT NULL,
    withheld_cells  integer NOT NULL,
    subjects        integer NOT NULL
);

CREATE TABLE noise_draws (
    period      text    NOT NULL,
    unit_id     text    NOT NULL,
    category    text    NOT NULL,
    noisy_count integer NOT NULL,
    PRIMARY KEY (period, unit_id, category)
);

CREATE TABLE release_cells (
    period        text    NOT NULL,
    unit_id       text    NOT NULL,
    category      text    NOT NULL,
    band          text    NOT NULL,
    rounded_count integer NOT NULL,  -- internal only, never public
    PRIMARY KEY (period, unit_id, category)
);

CREATE TABLE epsilon_ledger (
    subject_key text             NOT NULL,
    period      text             NOT NULL,
    epsilon     double precision NOT NULL,
    PRIMARY KEY (subject_key, period)
);

-- Every held-back cell and why (rule 8), operators only. Place holds use period 'live'.
CREATE TABLE withheld (
    period      text NOT NULL,
    area_id     text NOT NULL,
    category    text NOT NULL,
    reason      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period, area_id, category)
);
