-- Operators' volumes per system and category (the council's console): the category of each accepted
-- signal, as the anonymised topic already carries it. Rows accepted before this have none.
ALTER TABLE accepted_signals ADD COLUMN category text;
