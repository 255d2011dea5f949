-- Street gazetteer. No PostGIS: geometries are WKB (WGS84 lon/lat); spatial work is done in shapely.
-- A re-import replaces every row below except `imports`, in one transaction.

CREATE TABLE streets (
    id text PRIMARY KEY,                 -- "s-" + hash of the lowest OSM way id: stable across imports
    name text NOT NULL,
    norm_name text NOT NULL,             -- matching key (names.name_key): "agar gr"
    search_name text NOT NULL,           -- plain form for prefix search (names.plain_name)
    ward_code text,
    ward_name text,
    lsoa_code text,
    address_count integer NOT NULL CHECK (address_count >= 0),
    geometry bytea NOT NULL
);
CREATE INDEX streets_search_name_idx ON streets (search_name text_pattern_ops);
CREATE INDEX streets_norm_name_idx ON streets (norm_name text_pattern_ops);
CREATE INDEX streets_ward_code_idx ON streets (ward_code);

CREATE TABLE segments (
    id text PRIMARY KEY,                 -- "way/<osm id>"
    street_id text NOT NULL REFERENCES streets (id) ON DELETE CASCADE
);
CREATE INDEX segments_street_id_idx ON segments (street_id);

CREATE TABLE wards (
    code text PRIMARY KEY,
    name text NOT NULL,
    geometry bytea NOT NULL
);

-- The imported council boundary, if any (at most one row).
CREATE TABLE boundary (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    geometry bytea NOT NULL
);

CREATE TABLE units (
    id text PRIMARY KEY,                 -- "u<min_addresses>-" + hash of the sorted street ids
    min_addresses integer NOT NULL,
    name text NOT NULL,
    ward_code text,
    is_ward boolean NOT NULL,
    publishable boolean NOT NULL,
    address_count integer NOT NULL,
    street_ids text[] NOT NULL
);
CREATE INDEX units_min_addresses_idx ON units (min_addresses);

-- Street -> unit at each threshold, for joins (the same facts as units.street_ids).
CREATE TABLE unit_streets (
    street_id text NOT NULL REFERENCES streets (id) ON DELETE CASCADE,
    min_addresses integer NOT NULL,
    unit_id text NOT NULL REFERENCES units (id) ON DELETE CASCADE,
    PRIMARY KEY (street_id, min_addresses)
);
CREATE INDEX unit_streets_unit_id_idx ON unit_streets (unit_id);

CREATE TABLE imports (
    id bigserial PRIMARY KEY,
    source text NOT NULL,
    sha256 text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    counts jsonb NOT NULL
);
