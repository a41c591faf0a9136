//! The durable job queue in SQLite: enqueue with the submission, claim with one conditional UPDATE,
//! re-queue what a crash left `running`, retry internal errors, then give up as `error` (never as
//! the student's zero).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::{SqliteConnection, SqlitePool};

use super::db::{now_ms, write};
use crate::engine::report::{Report, Status};

/// Claims of one job before an internal error is final: the first try and two retries.
pub const MAX_ATTEMPTS: i64 = 3;
/// Priority of a student's upload (lower runs first).
pub const UPLOAD_PRIORITY: i64 = 0;
/// Priority of a regrade: after every waiting upload.
pub const REGRADE_PRIORITY: i64 = 10;

/// A job a worker has claimed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// The job.
    pub id: i64,
    /// Its submission.
    pub submission_id: i64,
    /// Claims so far, this one included.
    pub attempts: i64,
    /// `grade` (an upload's first grading) or `regrade`.
    pub kind: String,
    /// When it was queued (Unix ms).
    pub created_at: i64,
}

impl Claimed {
    /// Whether this is a regrade: the submission then keeps showing its previous result (and
    /// status) until the new one is stored.
    pub fn is_regrade(&self) -> bool {
        self.kind == "regrade"
    }
}

/// Queues a grading of `submission_id`, inside the caller's transaction.
pub async fn enqueue(
    tx: &mut SqliteConnection,
    submission_id: i64,
    priority: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO jobs (submission_id, state, priority, created_at) VALUES (?, 'queued', ?, ?)",
    )
    .bind(submission_id)
    .bind(priority)
    .bind(now_ms())
    .execute(tx)
    .await?;
    Ok(())
}

/// Puts back every job a previous run left `running` (it crashed or was killed mid-grading);
/// returns how many. Call at start, before any worker runs.
pub async fn requeue_running(db: &SqlitePool) -> Result<u64, sqlx::Error> {
    let mut tx = write(db).await?;
    let n = sqlx::query("UPDATE jobs SET state = 'queued', worker = NULL WHERE state = 'running'")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query(
        "UPDATE submissions SET status = 'queued' WHERE status = 'running' \
         AND id IN (SELECT submission_id FROM jobs WHERE state = 'queued')",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Claims the next queued job for `worker` that may run now, if any. SQLite serialises writers,
/// so the one conditional UPDATE hands each job to exactly one worker.
pub async fn claim(db: &SqlitePool, worker: &str) -> Result<Option<Claimed>, sqlx::Error> {
    let mut tx = write(db).await?;
    let claimed: Option<Claimed> = sqlx::query_as(
        "UPDATE jobs SET state = 'running', worker = ?, started_at = ?, attempts = attempts + 1 \
         WHERE state = 'queued' AND id = \
           (SELECT id FROM jobs WHERE state = 'queued' AND (run_after IS NULL OR run_after <= ?) \
            ORDER BY priority, id LIMIT 1) \
         RETURNING id, submission_id, attempts, kind, created_at",
    )
    .bind(worker)
    .bind(now_ms())
    .bind(now_ms())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(job) = claimed.as_ref().filter(|j| !j.is_regrade()) {
        sqlx::query("UPDATE submissions SET status = 'running' WHERE id = ?")
            .bind(job.submission_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// The submission's place in the queue (1 = next), or `None` when it is not waiting. Jobs waiting
/// out a retry backoff are not ahead of anyone; a job in backoff itself comes after every job that
/// may run now.
pub async fn position(db: &SqlitePool, submission_id: i64) -> Result<Option<i64>, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 + (SELECT COUNT(*) FROM jobs o WHERE o.state = 'queued' AND o.id <> j.id \
                 AND (o.run_after IS NULL OR o.run_after <= ?1) \
                 AND (j.run_after > ?1 OR o.priority < j.priority \
                      OR (o.priority = j.priority AND o.id < j.id))) \
         FROM jobs j WHERE j.submission_id = ?2 AND j.state = 'queued' \
         ORDER BY j.priority, j.id LIMIT 1",
    )
    .bind(now_ms())
    .bind(submission_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(p,)| p))
}

/// A report's status as stored in `submissions.status`.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Graded => "graded",
        Status::Rejected => "rejected",
        Status::BuildFailed => "build_failed",
    }
}

/// Stores the report of a claimed job and closes it; the final score takes off the late penalty
/// fixed at upload (rounded to the nearest point).
pub async fn finish(
    db: &SqlitePool,
    job: &Claimed,
    report: &Report,
    hidden_version: &str,
) -> Result<(), sqlx::Error> {
    let status = status_name(report.status);
    let json = serde_json::to_string(report).expect("reports serialise");
    let categories: BTreeMap<&str, u32> = report
        .categories
        .iter()
        .map(|(name, c)| (name.as_str(), c.score))
        .collect();
    let categories = serde_json::to_string(&categories).expect("maps serialise");
    let now = now_ms();
    let mut tx = write(db).await?;
    sqlx::query(
        "UPDATE submissions SET status = ?, score = ?, \
         final_score = (? * (100 - penalty_pct) + 50) / 100, max_score = ?, report = ?, \
         categories = ?, hidden_version = ?, graded_at = ?, error = NULL WHERE id = ?",
    )
    .bind(status)
    .bind(report.score)
    .bind(report.score)
    .bind(report.max_score)
    .bind(json)
    .bind(categories)
    .bind(hidden_version)
    .bind(now)
    .bind(job.submission_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE jobs SET state = 'done', finished_at = ?, last_error = NULL WHERE id = ?")
        .bind(now)
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Records an internal error of a claimed job: queued again, to run no earlier than
/// `retry_delay` x 2^(attempts - 1) from now, while attempts remain (returns `true`); else the job
/// and its submission end in `error`, which instructors see with `error` (a regrade's submission
/// keeps its status and previous result).
pub async fn fail(
    db: &SqlitePool,
    job: &Claimed,
    error: &str,
    retry_delay: Duration,
) -> Result<bool, sqlx::Error> {
    let retry = job.attempts < MAX_ATTEMPTS;
    let now = now_ms();
    let backoff = retry_delay.saturating_mul(1 << (job.attempts - 1).clamp(0, 16));
    let run_after = now.saturating_add(i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX));
    let mut tx = write(db).await?;
    let (job_state, submission_state) = if retry {
        ("queued", "queued")
    } else {
        ("error", "error")
    };
    sqlx::query(
        "UPDATE jobs SET state = ?, last_error = ?, worker = NULL, run_after = ?, \
         finished_at = CASE WHEN ? = 'error' THEN ? END WHERE id = ?",
    )
    .bind(job_state)
    .bind(error)
    .bind(run_after)
    .bind(job_state)
    .bind(now)
    .bind(job.id)
    .execute(&mut *tx)
    .await?;
    // A failed regrade leaves the previous result standing; instructors see `error`.
    sqlx::query(
        "UPDATE submissions SET status = CASE WHEN ? THEN status ELSE ? END, error = ? WHERE id = ?",
    )
    .bind(job.is_regrade())
    .bind(submission_state)
    .bind(error)
        .bind(job.submission_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(retry)
}
