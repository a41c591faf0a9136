-- The grading server's schema. Times are Unix milliseconds (UTC). Text enums are checked so that a
-- typo in the code fails loudly instead of storing a state nothing reads.

-- Everyone on the roster. `id` is the roster's own identifier (student number, login).
CREATE TABLE people (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('student', 'instructor')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- API tokens: only their SHA-256 (hex) is kept. Issuing a new one revokes the old ones.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id   TEXT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    sha256      TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX tokens_person ON tokens (person_id);

-- Web sessions (cookie pages, later): the cookie's SHA-256 and its CSRF secret.
CREATE TABLE sessions (
    sha256      TEXT PRIMARY KEY NOT NULL,
    person_id   TEXT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_person ON sessions (person_id);

-- Per-student deadline extensions (later: deadline checks and late penalties).
CREATE TABLE extensions (
    person_id   TEXT PRIMARY KEY NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    deadline    INTEGER NOT NULL,
    reason      TEXT,
    granted_by  TEXT REFERENCES people (id),
    created_at  INTEGER NOT NULL
);

-- Every accepted upload. AUTOINCREMENT: an id is never reused, because the stored file is named by it.
-- The result columns hold the latest grading; `error` (instructors only) says why grading itself
-- failed, which is never shown to the student as a score.
CREATE TABLE submissions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id       TEXT NOT NULL REFERENCES people (id),
    created_at      INTEGER NOT NULL,
    file_name       TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                        ('queued', 'running', 'graded', 'rejected', 'build_failed', 'error')),
    score           INTEGER,
    max_score       INTEGER,
    report          TEXT,
    hidden_version  TEXT,
    graded_at       INTEGER,
    error           TEXT
);
CREATE INDEX submissions_person ON submissions (person_id, id);

-- The durable queue. A worker claims the first `queued` job by (priority, id) with one conditional
-- UPDATE; regrades get a larger (later) priority than uploads. `attempts` counts claims: internal
-- errors are retried, no earlier than `run_after`, then the job ends in `error`.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id   INTEGER NOT NULL REFERENCES submissions (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL DEFAULT 'grade' CHECK (kind IN ('grade', 'regrade')),
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'error')),
    priority        INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    run_after       INTEGER,
    worker          TEXT,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER
);
CREATE INDEX jobs_queue ON jobs (state, priority, id);
CREATE INDEX jobs_submission ON jobs (submission_id);
