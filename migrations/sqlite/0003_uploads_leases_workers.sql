-- Scale-out: uploads in the database, job leases, and the workers that hold them.

-- Every accepted upload's bytes (at most the upload limit, 1 MiB by default), in the database so
-- that every grading process reads them, on any machine. Uploads stored by earlier versions as
-- DATA_DIR/uploads/ID.upload have no row here and are still read from there.
CREATE TABLE uploads (
    submission_id   INTEGER PRIMARY KEY NOT NULL REFERENCES submissions (id) ON DELETE CASCADE,
    bytes           BLOB NOT NULL
);

-- A claimed job belongs to its `worker` until `lease_until` (Unix ms); the worker renews the lease
-- while it grades. A job whose lease ran out (its worker died) is claimable again.
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
CREATE INDEX jobs_lease ON jobs (state, lease_until);

-- Grading processes and their last heartbeat: what /healthz tells about a web tier without
-- workers of its own.
CREATE TABLE workers (
    name        TEXT PRIMARY KEY NOT NULL,
    slots       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
