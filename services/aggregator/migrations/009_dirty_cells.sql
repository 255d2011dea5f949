-- Kept place counts that a catch-up's deferred batches marked dirty (valid_until '-infinity': they
-- hold at no time). Every batch that publishes looks them up; there are none while keeping up, so
-- the partial index stays empty and the look-up costs nothing, however many cells are kept.
CREATE INDEX place_cells_dirty ON place_cells (street_id, category) WHERE valid_until = '-infinity';
