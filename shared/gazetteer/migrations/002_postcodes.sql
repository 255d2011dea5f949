-- Postcode -> streets, from OSM addr:postcode (with addr:street, or the nearest street) at import.
CREATE TABLE postcodes (
    postcode text NOT NULL,              -- printed form: "NW1 9LS"
    street_id text NOT NULL REFERENCES streets (id) ON DELETE CASCADE,
    rank integer NOT NULL,               -- 0 = the street with most addresses in the postcode
    PRIMARY KEY (postcode, street_id)
);
CREATE INDEX postcodes_street_id_idx ON postcodes (street_id);
