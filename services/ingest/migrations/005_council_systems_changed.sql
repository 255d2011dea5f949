-- Ingest keeps the council systems it has recently seen in memory
-- (services/ingest/known_systems.py), as long as it hears of every change: a statement trigger, so
-- that no write path (the admin API, the CLI, another replica, a hand-run UPDATE) can forget to
-- tell. NOTIFY is delivered at commit, to every listening replica; a rolled-back change tells
-- nobody.
CREATE FUNCTION council_systems_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ingest_council_systems', '');
    RETURN NULL;
END $$;

CREATE TRIGGER council_systems_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON council_systems
    FOR EACH STATEMENT EXECUTE FUNCTION council_systems_changed();
