-- Run once (0.2.0). A batched function is its own batch implementation (pixelgres.server.core.batch):
-- the catalog only says which functions are batched.
ALTER TABLE pxt.batched_functions DROP COLUMN batch_func, DROP COLUMN max_batch;
