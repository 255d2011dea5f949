-- The place counts per (street, category), kept current by each batch (processing.refresh_place), so a
-- batch's refresh reads a few counts per street instead of every signal row of the areas it touched.
-- The counts depend on the time they are taken at: each row holds them for [valid_from, valid_until),
-- the span between the nearest times a count changes by itself (a raise expiring, a trend window
-- sliding past a raise or a withdrawal), NULL meaning unbounded. Outside that span, or when a row is
-- missing, the counts are recomputed from `signals`. A cache only: dropping rows loses nothing.
CREATE TABLE place_cells (
    street_id   text    NOT NULL,
    category    text    NOT NULL,
    open        integer NOT NULL,
    closed      integer NOT NULL,
    this_window integer NOT NULL,
    last_window integer NOT NULL,
    valid_from  timestamptz,
    valid_until timestamptz,
    PRIMARY KEY (street_id, category)
);
