-- The models that have at least one GPU runtime connected, so GET /v1/models knows which pools to ask. Each model's
-- pool (ModelPool) writes its own row when its first runtime connects and deletes it when its last one leaves, not
-- on every heartbeat. The pools are the truth: a row may outlive its last runtime for a moment, and the listing
-- checks each pool anyway.
CREATE TABLE models (
  name       TEXT PRIMARY KEY,
  listed_at  INTEGER NOT NULL
);
