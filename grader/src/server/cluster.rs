//! Many processes on one PostgreSQL database (a web tier and `grader worker`s on any machines):
//! job wake-ups and grading progress through `LISTEN`/`NOTIFY`, each process's heartbeat in the
//! `workers` table, and the hand-back of jobs whose worker stopped renewing its lease.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::AnyPool;
use tokio::sync::{watch, Notify};

use super::db::now_ms;
use super::events::{Hub, Update};
use super::gradebook;
use super::queue::{self, JOBS_CHANNEL};

/// How long the listener waits before connecting again to a database that is away.
const RETRY: Duration = Duration::from_secs(5);

/// The PostgreSQL channel carrying every grading's progress.
pub const EVENTS_CHANNEL: &str = "grader_events";

/// One update on [`EVENTS_CHANNEL`].
#[derive(Debug, Serialize, Deserialize)]
struct Relayed {
    /// The process that published it: it does not take its own updates back.
    origin: String,
    submission: i64,
    /// The update's step ([`Update::Done`] does not carry it in its JSON).
    step: u64,
    update: Update,
}

/// A name for this process, unique among the processes sharing a database: host, process id
/// and a random suffix (a restarted process may get the same id).
pub fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Sends every update this process's workers publish on `hub` (never one relayed from another
/// process, which would echo between them) to the other processes, until the hub is gone.
pub async fn publish(hub: Hub, db: AnyPool, origin: String) {
    let mut updates = hub.subscribe_own();
    loop {
        let (submission, update) = match updates.recv().await {
            Ok(next) => next,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("{n} progress update(s) not relayed: the database is slow");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let relayed = Relayed {
            origin: origin.clone(),
            submission,
            step: update.step(),
            update,
        };
        let payload = serde_json::to_string(&relayed).expect("updates serialise");
        // Through a subquery: `Any` cannot decode the function's `void`.
        let sent = sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, $2)) AS notified")
            .bind(EVENTS_CHANNEL)
            .bind(payload)
            .execute(&db)
            .await;
        if let Err(e) = sent {
            tracing::warn!("cannot relay a progress update: {e}");
        }
    }
}

/// Listens on `url` until `stop`: a queued job wakes a local worker; another process's progress
/// update is republished on `hub` (its `done` also marks the gradebook out of date), so that
/// event streams and pages work as on one machine.
pub async fn listen(
    url: String,
    origin: String,
    hub: Hub,
    wake: Arc<Notify>,
    gradebook: Arc<gradebook::Cache>,
    mut stop: watch::Receiver<bool>,
) {
    let mut listener = loop {
        let connected = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen_all([JOBS_CHANNEL, EVENTS_CHANNEL]).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match connected.await {
            Ok(l) => break l,
            Err(e) => {
                tracing::error!("cannot listen for jobs and progress: {e}");
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    };
    loop {
        let received = tokio::select! {
            _ = stop.changed() => return,
            r = listener.recv() => r,
        };
        // `recv` reconnects by itself; what was sent meanwhile is lost, which the workers'
        // slow poll and the event streams' state reads make up for.
        let notification = match received {
            Ok(n) => n,
            Err(e) => {
                // The database is away: try again in a while rather than at once.
                tracing::warn!("listening for jobs and progress: {e}");
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        if notification.channel() == JOBS_CHANNEL {
            wake.notify_one();
            continue;
        }
        match serde_json::from_str::<Relayed>(notification.payload()) {
            Ok(r) if r.origin == origin => {}
            Ok(r) => {
                let update = match r.update {
                    Update::Done {
                        status,
                        score,
                        max_score,
                        ..
                    } => {
                        gradebook.invalidate();
                        Update::Done {
                            status,
                            score,
                            max_score,
                            step: r.step,
                        }
                    }
                    other => other,
                };
                hub.republish(r.submission, update);
            }
            Err(e) => tracing::warn!("a progress update that does not parse: {e}"),
        }
    }
}

/// Every `lease / 4` until `stop`: records that this process is alive with `slots` workers (when
/// it has any), and hands back the jobs of workers that stopped renewing their lease. Removes
/// this process's row when stopped.
pub async fn keep(
    db: AnyPool,
    name: String,
    slots: usize,
    lease: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let started = now_ms();
    loop {
        if slots > 0 {
            if let Err(e) = beat(&db, &name, slots, started).await {
                tracing::warn!("cannot record this worker's heartbeat: {e}");
            }
        }
        match queue::reclaim_expired(&db).await {
            Ok((0, 0)) => {}
            Ok((requeued, ended)) => tracing::warn!(
                "{requeued} job(s) queued again and {ended} ended in error: their worker stopped \
                 renewing its lease"
            ),
            Err(e) => tracing::warn!("cannot hand back expired jobs: {e}"),
        }
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(lease / 4) => {}
        }
    }
    if slots > 0 {
        let gone = sqlx::query("DELETE FROM workers WHERE name = $1")
            .bind(&name)
            .execute(&db)
            .await;
        if let Err(e) = gone {
            tracing::warn!("cannot remove this worker from the workers table: {e}");
        }
    }
}

/// Upserts this process's heartbeat.
async fn beat(db: &AnyPool, name: &str, slots: usize, started: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workers (name, slots, started_at, seen_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, seen_at = excluded.seen_at",
    )
    .bind(name)
    .bind(i64::try_from(slots).unwrap_or(i64::MAX))
    .bind(started)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// Grading processes that beat within `lease`, and their worker slots in all.
pub async fn alive(db: &AnyPool, lease: Duration) -> Result<(i64, i64), sqlx::Error> {
    let since = now_ms() - i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(slots), 0) AS BIGINT) FROM workers WHERE seen_at > $1",
    )
    .bind(since)
    .fetch_one(db)
    .await
}
