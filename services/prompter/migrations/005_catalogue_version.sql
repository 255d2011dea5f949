-- The catalogue (opportunities and platforms) changes rarely but is read for every poll of needs: a
-- counter moved by every write to either table, in the writing transaction, lets a prompter keep the
-- catalogue it last read for as long as the counter stands (services/prompter/publisher.py). Moved by
-- a statement trigger, so no write path can forget it; a row lock orders concurrent writers.
CREATE TABLE catalogue_version (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version   bigint NOT NULL
);
INSERT INTO catalogue_version VALUES (true, 0);

CREATE FUNCTION catalogue_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE prompter.catalogue_version SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER opportunities_catalogue_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON opportunities
    FOR EACH STATEMENT EXECUTE FUNCTION catalogue_changed();
CREATE TRIGGER platforms_catalogue_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON platforms
    FOR EACH STATEMENT EXECUTE FUNCTION catalogue_changed();
