//! The durable job queue, on SQLite or PostgreSQL: enqueue with the submission, claim with one
//! conditional UPDATE (`FOR UPDATE SKIP LOCKED` on PostgreSQL, where many processes claim), hold
//! a job by a lease its worker renews, hand back jobs whose worker stopped renewing, retry internal
//! errors, then give up as `error` (never as the student's zero).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool};

use super::db::{now_ms, write, Backend};
use crate::engine::report::{Report, Status};

/// Claims of one job before an internal error (or a worker that died with it) is final: the
/// first try and two retries.
pub const MAX_ATTEMPTS: i64 = 3;
/// Priority of a student's upload (lower runs first).
pub const UPLOAD_PRIORITY: i64 = 0;
/// Priority of a regrade: after every waiting upload.
pub const REGRADE_PRIORITY: i64 = 10;
/// The usual lease of a claimed job: its worker renews it every third of it, so a worker is
/// taken for dead after a minute without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(60);
/// The PostgreSQL channel told of every queued job.
pub const JOBS_CHANNEL: &str = "grader_jobs";

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
    /// The worker holding it: results and heartbeats count only from this worker.
    pub worker: String,
}

impl Claimed {
    /// Whether this is a regrade: the submission then keeps showing its previous result (and
    /// status) until the new one is stored.
    pub fn is_regrade(&self) -> bool {
        self.kind == "regrade"
    }
}

/// Queues a grading of `submission_id`, inside the caller's transaction (on PostgreSQL, idle
/// workers are woken when it commits).
pub async fn enqueue(
    tx: &mut AnyConnection,
    submission_id: i64,
    priority: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO jobs (submission_id, state, priority, created_at) VALUES ($1, 'queued', $2, $3)",
    )
    .bind(submission_id)
    .bind(priority)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    announce(tx).await
}

/// Tells workers of other processes that jobs were queued in the caller's transaction: a
/// `NOTIFY` on PostgreSQL, delivered at commit (nothing on SQLite, whose one process wakes its
/// workers itself).
pub async fn announce(tx: &mut AnyConnection) -> Result<(), sqlx::Error> {
    if tx.backend_name() == "PostgreSQL" {
        // Through a subquery: `Any` cannot decode the function's `void`.
        sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, '')) AS notified")
            .bind(JOBS_CHANNEL)
            .execute(tx)
            .await?;
    }
    Ok(())
}

/// Puts back every job a previous run left `running` (it crashed or was killed mid-grading);
/// returns how many. Call at start, before any worker runs, and only where this process owns
/// the queue (SQLite): on PostgreSQL other processes' jobs are running, and expired leases
/// ([`reclaim_expired`]) hand back those of dead workers.
pub async fn requeue_running(db: &AnyPool) -> Result<u64, sqlx::Error> {
    let mut tx = write(db).await?;
    let n = sqlx::query(
        "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL \
         WHERE state = 'running'",
    )
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

/// Hands back the jobs whose lease ran out (their worker died or lost the database): queued
/// again while attempts remain, else `error` (a regrade's submission keeps its result). Returns
/// how many were queued again and how many ended. Safe to run from every process at once: each
/// row is updated by whichever gets it first, and the others no longer match it.
pub async fn reclaim_expired(db: &AnyPool) -> Result<(u64, u64), sqlx::Error> {
    let now = now_ms();
    let mut tx = queue_tx(db).await?;
    let message = "the worker grading it stopped renewing its lease (it died or lost the database)";
    let ended: Vec<(i64, String)> = sqlx::query_as(
        "UPDATE jobs SET state = 'error', worker = NULL, lease_until = NULL, finished_at = $1, \
         last_error = $2 WHERE state = 'running' AND lease_until < $1 AND attempts >= $3 \
         RETURNING submission_id, kind",
    )
    .bind(now)
    .bind(message)
    .bind(MAX_ATTEMPTS)
    .fetch_all(&mut *tx)
    .await?;
    for (submission, kind) in &ended {
        sqlx::query(
            "UPDATE submissions SET status = CASE WHEN $1 THEN status ELSE 'error' END, \
             error = $2 WHERE id = $3",
        )
        .bind(kind == "regrade")
        .bind(message)
        .bind(submission)
        .execute(&mut *tx)
        .await?;
    }
    let requeued: Vec<(i64,)> = sqlx::query_as(
        "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL, last_error = $2 \
         WHERE state = 'running' AND lease_until < $1 RETURNING submission_id",
    )
    .bind(now)
    .bind(message)
    .fetch_all(&mut *tx)
    .await?;
    for (submission,) in &requeued {
        sqlx::query(
            "UPDATE submissions SET status = 'queued' WHERE id = $1 AND status = 'running'",
        )
        .bind(submission)
        .execute(&mut *tx)
        .await?;
    }
    if !requeued.is_empty() {
        announce(&mut tx).await?;
    }
    tx.commit().await?;
    Ok((requeued.len() as u64, ended.len() as u64))
}

/// Claims the next queued job that may run now for `worker`, leased for `lease`, if any. One
/// statement picks and takes it: SQLite serialises writers, and PostgreSQL's `SKIP LOCKED` lets
/// concurrent claims pass over a row another claim holds instead of taking it twice.
pub async fn claim(
    db: &AnyPool,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let now = now_ms();
    let lease_until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let (mut tx, lock) = match Backend::of(db) {
        Backend::Sqlite => (write(db).await?, ""),
        Backend::Postgres => (db.begin().await?, " FOR UPDATE SKIP LOCKED"),
    };
    let sql = format!(
        "UPDATE jobs SET state = 'running', worker = $1, started_at = $2, lease_until = $3, \
         attempts = attempts + 1 \
         WHERE state = 'queued' AND id = \
           (SELECT id FROM jobs WHERE state = 'queued' AND (run_after IS NULL OR run_after <= $2) \
            ORDER BY priority, id LIMIT 1{lock}) \
         RETURNING id, submission_id, attempts, kind, created_at, worker"
    );
    let claimed: Option<Claimed> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(worker)
        .bind(now)
        .bind(lease_until)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(job) = claimed.as_ref().filter(|j| !j.is_regrade()) {
        sqlx::query("UPDATE submissions SET status = 'running' WHERE id = $1")
            .bind(job.submission_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Renews `job`'s lease for `lease` from now; `false` when its worker no longer holds it (the
/// lease ran out and the job went back to the queue or to another worker).
pub async fn heartbeat(db: &AnyPool, job: &Claimed, lease: Duration) -> Result<bool, sqlx::Error> {
    let lease_until = now_ms().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let renewed = sqlx::query(
        "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND worker = $3 AND state = 'running'",
    )
    .bind(lease_until)
    .bind(job.id)
    .bind(&job.worker)
    .execute(db)
    .await?
    .rows_affected();
    Ok(renewed == 1)
}

/// The submission's place in the queue (1 = next), or `None` when it is not waiting. Jobs waiting
/// out a retry backoff are not ahead of anyone; a job in backoff itself comes after every job that
/// may run now.
pub async fn position(db: &AnyPool, submission_id: i64) -> Result<Option<i64>, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 + (SELECT COUNT(*) FROM jobs o WHERE o.state = 'queued' AND o.id <> j.id \
                 AND (o.run_after IS NULL OR o.run_after <= $1) \
                 AND (j.run_after > $1 OR o.priority < j.priority \
                      OR (o.priority = j.priority AND o.id < j.id))) \
         FROM jobs j WHERE j.submission_id = $2 AND j.state = 'queued' \
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

/// A transaction of the queue's own bookkeeping. SQLite: the file's write lock at once (see
/// [`write`]). PostgreSQL: a plain one, since each statement touches rows the lease or
/// `SKIP LOCKED` already keeps apart, and the global lock would make every worker wait.
async fn queue_tx(db: &AnyPool) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match Backend::of(db) {
        Backend::Sqlite => write(db).await,
        Backend::Postgres => db.begin().await,
    }
}

/// Stores the report of a claimed job and closes it, if its worker still holds it (returns
/// `false`, storing nothing, when the lease ran out and the job went to the queue or another
/// worker: that one's result counts). The final score takes off the late penalty fixed at
/// upload (rounded to the nearest point).
pub async fn finish(
    db: &AnyPool,
    job: &Claimed,
    report: &Report,
    hidden_version: &str,
) -> Result<bool, sqlx::Error> {
    let status = status_name(report.status);
    let json = serde_json::to_string(report).expect("reports serialise");
    let categories: BTreeMap<&str, u32> = report
        .categories
        .iter()
        .map(|(name, c)| (name.as_str(), c.score))
        .collect();
    let categories = serde_json::to_string(&categories).expect("maps serialise");
    let now = now_ms();
    let mut tx = queue_tx(db).await?;
    if !release(&mut tx, job, "done", None, None, Some(now)).await? {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE submissions SET status = $1, score = $2, \
         final_score = ($3 * (100 - penalty_pct) + 50) / 100, max_score = $4, report = $5, \
         categories = $6, hidden_version = $7, graded_at = $8, error = NULL WHERE id = $9",
    )
    .bind(status)
    .bind(i64::from(report.score))
    .bind(i64::from(report.score))
    .bind(i64::from(report.max_score))
    .bind(json)
    .bind(categories)
    .bind(hidden_version)
    .bind(now)
    .bind(job.submission_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Moves `job` out of `running` to `state`, if its worker still holds it; whether it did.
async fn release(
    tx: &mut AnyConnection,
    job: &Claimed,
    state: &str,
    error: Option<&str>,
    run_after: Option<i64>,
    finished_at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let released = sqlx::query(
        "UPDATE jobs SET state = $1, last_error = $2, run_after = $3, finished_at = $4, \
         worker = CASE WHEN $1 = 'done' THEN worker END, lease_until = NULL \
         WHERE id = $5 AND worker = $6 AND state = 'running'",
    )
    .bind(state)
    .bind(error)
    .bind(run_after)
    .bind(finished_at)
    .bind(job.id)
    .bind(&job.worker)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(released == 1)
}

/// What became of a job whose grading failed inside the grader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Queued again, after a backoff.
    Retried,
    /// Out of attempts: the job and its submission (unless a regrade's) end in `error`.
    Final,
    /// Its worker no longer held it (the lease ran out): nothing was recorded.
    Lost,
}

/// Records an internal error of a claimed job: queued again, to run no earlier than
/// `retry_delay` x 2^(attempts - 1) from now, while attempts remain; else the job and its
/// submission end in `error`, which instructors see with `error` (a regrade's submission keeps
/// its status and previous result).
pub async fn fail(
    db: &AnyPool,
    job: &Claimed,
    error: &str,
    retry_delay: Duration,
) -> Result<Failed, sqlx::Error> {
    let retry = job.attempts < MAX_ATTEMPTS;
    let now = now_ms();
    let backoff = retry_delay.saturating_mul(1 << (job.attempts - 1).clamp(0, 16));
    let run_after = now.saturating_add(i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX));
    let mut tx = queue_tx(db).await?;
    let released = if retry {
        release(&mut tx, job, "queued", Some(error), Some(run_after), None).await?
    } else {
        release(&mut tx, job, "error", Some(error), None, Some(now)).await?
    };
    if !released {
        return Ok(Failed::Lost);
    }
    // A failed regrade leaves the previous result standing; instructors see `error`.
    sqlx::query(
        "UPDATE submissions SET status = CASE WHEN $1 THEN status ELSE $2 END, error = $3 \
         WHERE id = $4",
    )
    .bind(job.is_regrade())
    .bind(if retry { "queued" } else { "error" })
    .bind(error)
    .bind(job.submission_id)
    .execute(&mut *tx)
    .await?;
    if retry {
        announce(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(if retry {
        Failed::Retried
    } else {
        Failed::Final
    })
}
