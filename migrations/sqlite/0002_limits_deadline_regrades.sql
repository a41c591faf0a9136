-- Deadlines, late penalties and regrades.

-- How late the upload came (milliseconds after the student's deadline; NULL when on time or when
-- there is no deadline) and the penalty it earned then, in percent: fixed at upload, so that a
-- regrade keeps it. `final_score` is the score after that penalty; `categories` the report's
-- points per category (JSON object), so that the gradebook needs no report.
ALTER TABLE submissions ADD COLUMN late_ms INTEGER;
ALTER TABLE submissions ADD COLUMN penalty_pct INTEGER NOT NULL DEFAULT 0
    CHECK (penalty_pct BETWEEN 0 AND 100);
ALTER TABLE submissions ADD COLUMN final_score INTEGER;
ALTER TABLE submissions ADD COLUMN categories TEXT;
UPDATE submissions SET final_score = score WHERE score IS NOT NULL;
-- The rate limit counts a student's uploads over the last day.
CREATE INDEX submissions_person_time ON submissions (person_id, created_at);
-- Covers the gradebook's and `/api/me`'s reads: the columns added above come after `report` in each
-- row, and reaching them in the table would walk every report's overflow pages.
CREATE INDEX submissions_scores ON submissions
    (person_id, final_score, id, status, score, max_score, late_ms, penalty_pct, categories);

-- Regrade requests of instructors; their jobs point back here for progress.
CREATE TABLE regrades (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    requested_by    TEXT NOT NULL REFERENCES people (id),
    scope           TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
ALTER TABLE jobs ADD COLUMN regrade_id INTEGER REFERENCES regrades (id);
CREATE INDEX jobs_regrade ON jobs (regrade_id);
