-- The model directory now remembers every model a runtime has ever registered, not only those with a runtime
-- connected: POST /sessions answers 404 MODEL_NOT_FOUND for a name no runtime ever served, and queues sessions of a
-- known model whose runtimes are away (WAITING, reason no_runtime_connected). A pool marks its row connected = 0
-- when its last runtime leaves instead of deleting it; GET /v1/models lists only connected = 1. Rows that exist
-- now were written by a pool with a runtime connected.
ALTER TABLE models ADD COLUMN connected INTEGER NOT NULL DEFAULT 1 CHECK (connected IN (0, 1));
