//! Grading workers: each claims a job, grades its stored upload through the [`Engine`] on a
//! blocking thread (never on the async runtime) while renewing the job's lease, and stores the
//! report or the internal error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tracing::Instrument as _;

use super::db::now_ms;
use super::events::Update;
use super::queue::{self, Claimed, Failed};
use super::uploads;
use super::AppState;
use crate::engine::report::Report;
use crate::engine::suite::HiddenTests;
use crate::engine::{Engine, Input, Mode};

/// How long an idle worker waits for a wake-up before looking at the queue again (a safety net:
/// uploads wake a worker at once).
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Runs worker `name` until `stop` turns true (or its sender is dropped); a grading under way is
/// finished first.
pub async fn run(
    state: AppState,
    engine: Arc<Engine>,
    name: String,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        match queue::claim(&state.db, &name, state.lease).await {
            Ok(Some(job)) => grade(&state, &engine, &name, job).await,
            Ok(None) => {
                tokio::select! {
                    () = state.wake.notified() => {}
                    // A dropped sender (the server is gone) stops the worker too.
                    changed = stop.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            Err(e) => {
                tracing::error!(worker = %name, "cannot claim a job: {e}");
                tokio::select! {
                    // A dropped sender (the server is gone) stops the worker too.
                    changed = stop.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }
}

/// Grades one claimed job and records the outcome, in a span naming the submission.
async fn grade(state: &AppState, engine: &Arc<Engine>, name: &str, job: Claimed) {
    let span = tracing::info_span!("grading", submission = job.submission_id, job = job.id, kind = %job.kind, worker = %name);
    let heartbeat = tokio::spawn(renew(state.clone(), job.clone()).instrument(span.clone()));
    grade_in_span(state, engine, job).instrument(span).await;
    heartbeat.abort();
}

/// Renews `job`'s lease every third of it, for as long as the grading runs (a worker that stops
/// renewing it, dead or cut off, loses the job to another).
async fn renew(state: AppState, job: Claimed) {
    let mut every = tokio::time::interval(state.lease / 3);
    every.tick().await;
    loop {
        every.tick().await;
        match queue::heartbeat(&state.db, &job, state.lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("lost the lease: the job went back to the queue");
                return;
            }
            Err(e) => tracing::warn!("cannot renew the lease: {e}"),
        }
    }
}

async fn grade_in_span(state: &AppState, engine: &Arc<Engine>, job: Claimed) {
    let sub = job.submission_id;
    let waited = Duration::from_millis(u64::try_from(now_ms() - job.created_at).unwrap_or(0));
    let started = Instant::now();
    let outcome = attempt(state, engine, &job).await;
    let took = started.elapsed();
    let stored = match outcome {
        Ok((report, version)) => {
            let status = queue::status_name(report.status);
            queue::finish(&state.db, &job, &report, &version)
                .await
                .map(|stored| {
                    if !stored {
                        tracing::warn!("lost the lease before storing the result: not stored");
                        return;
                    }
                    state.metrics.grading(status, waited, took);
                    tracing::info!(score = report.score, "{status}");
                    state.events.publish(
                        sub,
                        Update::Done {
                            status: status.into(),
                            score: Some(i64::from(report.score)),
                            max_score: Some(i64::from(report.max_score)),
                            step: Update::done_step(report.tests.len()),
                        },
                    );
                })
        }
        Err(error) => {
            tracing::error!(attempt = job.attempts, "grading failed: {error}");
            queue::fail(&state.db, &job, &error, state.retry_delay)
                .await
                .map(|failed| match failed {
                    Failed::Lost => tracing::warn!("lost the lease before storing the error"),
                    Failed::Retried => {
                        state.metrics.grading("retried", waited, took);
                        state.wake.notify_one();
                    }
                    Failed::Final => {
                        state.metrics.grading("error", waited, took);
                        state.events.publish(
                            sub,
                            Update::Done {
                                status: "error".into(),
                                score: None,
                                max_score: None,
                                step: Update::done_step(state.hidden_test_count()),
                            },
                        );
                    }
                })
        }
    };
    state.gradebook.invalidate();
    if let Err(e) = stored {
        // The job stays `running` and is re-queued at the next start: nothing is lost.
        tracing::error!("cannot store the outcome: {e}");
    }
}

/// Reads the stored upload, checks it against its SHA-256 and grades it; an `Err` is an internal
/// error in words for instructors.
async fn attempt(
    state: &AppState,
    engine: &Arc<Engine>,
    job: &Claimed,
) -> Result<(Report, String), String> {
    let sub = job.submission_id;
    let (file_name, sha256): (String, String) =
        sqlx::query_as("SELECT file_name, sha256 FROM submissions WHERE id = $1")
            .bind(sub)
            .fetch_one(&state.db)
            .await
            .map_err(|e| format!("database: {e}"))?;
    let bytes = uploads::read(&state.db, &state.data_dir, sub)
        .await
        .map_err(|e| format!("cannot read the stored upload: {e}"))?
        .ok_or("cannot read the stored upload: it is missing")?;
    if hex::encode(Sha256::digest(&bytes)) != sha256 {
        return Err("the stored upload does not match its SHA-256".into());
    }
    let engine = Arc::clone(engine);
    let events = state.events.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _span = span.enter();
        // Read per grading: the version names the tests that actually ran.
        let dir = engine.config().hidden_tests.as_deref();
        let version = HiddenTests::open(dir.ok_or("the engine has no hidden tests")?)
            .map_err(|e| format!("hidden tests: {e}"))?
            .version()
            .to_string();
        let progress = |p: crate::engine::Progress| {
            if let Some(update) = Update::from_progress(&p) {
                events.publish(sub, update);
            }
        };
        let input = Input::Upload {
            file_name: &file_name,
            bytes: &bytes,
        };
        let report = engine
            .grade(input, Mode::Hidden, &progress)
            .map_err(|e| format!("engine: {e}"))?;
        Ok((report, version))
    })
    .await
    .map_err(|e| format!("the grading thread died: {e}"))?
}
