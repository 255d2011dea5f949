-- Quarterly ward trends (rule 5). Each monthly release keeps its safe ward totals (internal only,
-- never published as numbers), so a quarter can be summed after restarts. Releases made before
-- this migration kept none (ward_totals false): quarters needing them get no trend.
ALTER TABLE releases ADD COLUMN ward_totals boolean NOT NULL DEFAULT false;

CREATE TABLE ward_totals (
    period    text    NOT NULL,  -- YYYY-MM
    ward_code text    NOT NULL,
    category  text    NOT NULL,
    total     integer NOT NULL,  -- rounded sum of the ward's stored noisy unit counts
    cells     integer NOT NULL,  -- how many noisy unit counts it sums
    PRIMARY KEY (period, ward_code, category)
);

-- Quarters whose trends were computed (once, after all three months were released).
CREATE TABLE quarter_trends (
    quarter     text PRIMARY KEY,  -- YYYY-Qn
    computed_at timestamptz NOT NULL,
    published   integer NOT NULL,
    withheld    integer NOT NULL
);
