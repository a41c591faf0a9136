//! The grading server (`grader serve`): a JSON API over a durable SQLite queue, with workers that
//! grade through the [`Engine`](crate::engine::Engine).
//!
//! Layers: [`db`] (the database) <- [`auth`], [`queue`], [`roster`], [`policy`] <- [`worker`], [`api`],
//! [`gradebook`], [`regrade`], [`metrics`] <- this module ([`app`], [`start`], [`run`]).

pub mod api;
pub mod auth;
pub mod db;
pub mod error;
pub mod events;
pub mod gradebook;
pub mod metrics;
pub mod policy;
pub mod queue;
pub mod regrade;
pub mod roster;
pub mod time;
pub mod web;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{middleware, Json, Router};
use sqlx::SqlitePool;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};

use crate::engine::Engine;

/// The folder of stored uploads inside the data folder.
const UPLOADS: &str = "uploads";

/// Shared by every request and worker.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: SqlitePool,
    /// The data folder.
    pub data_dir: PathBuf,
    /// Largest accepted upload, in bytes.
    pub upload_limit: u64,
    /// Wait before the first retry of a grading that failed inside the grader (doubling after).
    pub retry_delay: Duration,
    /// Wakes an idle worker when a job is queued.
    pub wake: Arc<Notify>,
    /// Live progress of gradings.
    pub events: events::Hub,
    /// Rate limit, deadline, late penalty, score policy.
    pub policy: Arc<policy::Policy>,
    /// Counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The last gradebook built.
    pub gradebook: Arc<gradebook::Cache>,
    /// The engine the workers grade with (`None`: no worker runs).
    engine: Option<Arc<Engine>>,
    /// Workers grading.
    workers: usize,
    accepting: Arc<AtomicBool>,
}

impl AppState {
    /// Whether uploads are taken (false once shutdown began).
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// The number of rubric entries a grading runs (0 without an engine): bounds the steps of
    /// its progress events.
    pub fn hidden_test_count(&self) -> usize {
        self.engine
            .as_ref()
            .and_then(|e| e.rubric())
            .map_or(0, |r| r.entries().len())
    }

    /// Where uploads are stored.
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join(UPLOADS)
    }

    /// The stored upload of submission `id`.
    pub fn upload_path(&self, id: i64) -> PathBuf {
        self.uploads_dir().join(format!("{id}.upload"))
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(api::router())
        .merge(policy::router())
        .merge(gradebook::router())
        .merge(regrade::router())
        .merge(web::router())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        // Failures are logged where they happen (internal errors) or are expected (503 while
        // shutting down); the trace is for `RUST_LOG=tower_http=debug`.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // One line per request at `info` (status and latency, in the request's span).
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}

/// Each request's span: its route and, where the path names one, the submission (an upload
/// records its new id in it).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        submission = tracing::field::Empty
    );
    if let Some(id) = request
        .uri()
        .path()
        .strip_prefix("/api/submissions/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| id.parse::<i64>().ok())
    {
        span.record("submission", id);
    }
    span
}

/// `GET /healthz`: the database answers, the sandbox is ready (an engine with workers), and the
/// queue's depth; 503 when the server cannot grade or takes no uploads.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let queue: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
        "SELECT COALESCE(SUM(state = 'queued'), 0), COALESCE(SUM(state = 'running'), 0) \
         FROM jobs WHERE state IN ('queued', 'running')",
    )
    .fetch_one(&state.db)
    .await;
    let sandbox = state.engine.is_some() && state.workers > 0;
    let accepting = state.accepting();
    let (database, queued, running) = match queue {
        Ok((q, r)) => (serde_json::json!("ok"), Some(q), Some(r)),
        Err(e) => {
            tracing::error!("health check: database: {e}");
            (serde_json::json!("unavailable"), None, None)
        }
    };
    let ready = queued.is_some() && sandbox && accepting;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({
            "status": if ready { "ok" } else { "unavailable" },
            "database": database,
            "sandbox": if sandbox { "ready" } else { "no workers" },
            "accepting_uploads": accepting,
            "queue": {"queued": queued, "running": running},
        })),
    )
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data folder (database, uploads; the engine's caches live there too).
    pub data_dir: PathBuf,
    /// Address to listen on (port 0: any free port).
    pub bind: SocketAddr,
    /// Grading workers (0: none; jobs wait).
    pub workers: usize,
    /// Largest accepted upload, in bytes.
    pub upload_limit: u64,
    /// How long shutdown waits for running gradings.
    pub drain: Duration,
    /// Wait before the first retry of an internal grading error (doubling after).
    pub retry_delay: Duration,
    /// Rate limit, deadline, late penalty, score policy.
    pub policy: policy::Policy,
}

/// The usual wait before retrying an internal grading error: long enough for a passing resource
/// shortage to clear.
pub const RETRY_DELAY: Duration = Duration::from_secs(10);

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// A query at start.
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
    /// The data folder or the listener.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: AppState,
    drain: Duration,
    stop_workers: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    stop_http: tokio::sync::oneshot::Sender<()>,
    http: JoinHandle<std::io::Result<()>>,
}

/// Opens the database, re-queues what a crash left running, and starts the listener and
/// `options.workers` workers grading with `engine` (without an engine no worker runs: jobs wait,
/// which is how the tests look at the queue itself).
pub async fn start(options: Options, engine: Option<Arc<Engine>>) -> Result<Server, ServerError> {
    let uploads = options.data_dir.join(UPLOADS);
    std::fs::create_dir_all(&uploads).map_err(|source| ServerError::Io {
        what: format!("cannot create {}", uploads.display()),
        source,
    })?;
    let db = db::open(&options.data_dir).await?;
    let requeued = queue::requeue_running(&db).await?;
    if requeued > 0 {
        tracing::warn!("re-queued {requeued} job(s) left running by the previous run");
    }
    let state = AppState {
        db,
        data_dir: options.data_dir.clone(),
        upload_limit: options.upload_limit,
        retry_delay: options.retry_delay,
        wake: Arc::new(Notify::new()),
        events: events::Hub::default(),
        policy: Arc::new(options.policy.clone()),
        metrics: Arc::default(),
        gradebook: Arc::default(),
        workers: if engine.is_some() { options.workers } else { 0 },
        engine: engine.clone(),
        accepting: Arc::new(AtomicBool::new(true)),
    };
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| ServerError::Io {
            what: format!("cannot listen on {}", options.bind),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Io {
        what: "cannot read the listening address".into(),
        source,
    })?;
    let (stop_workers, stop_rx) = watch::channel(false);
    let workers = match engine {
        Some(engine) => (0..options.workers)
            .map(|i| {
                tokio::spawn(worker::run(
                    state.clone(),
                    Arc::clone(&engine),
                    format!("worker-{i}"),
                    stop_rx.clone(),
                ))
            })
            .collect(),
        None => Vec::new(),
    };
    let (stop_http, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
    let router = app(state.clone());
    let http = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_http_rx.await;
            })
            .await
    });
    Ok(Server {
        addr,
        state,
        drain: options.drain,
        stop_workers,
        workers,
        stop_http,
        http,
    })
}

/// How long the listener gets, after the workers, to finish answering requests.
const HTTP_GRACE: Duration = Duration::from_secs(5);

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its state (database, events).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops taking uploads (503), lets running gradings finish for at most the drain time, then
    /// stops the listener. Returns whether every grading finished in time (one that did not stays
    /// `running` in the database and is re-queued at the next start).
    pub async fn shutdown(self) -> bool {
        self.state.accepting.store(false, Ordering::SeqCst);
        let _ = self.stop_workers.send(true);
        let workers = futures_util::future::join_all(self.workers);
        let finished = tokio::time::timeout(self.drain, workers).await.is_ok();
        let _ = self.stop_http.send(());
        // Event streams may hold connections open; they are cut after the grace period.
        let _ = tokio::time::timeout(HTTP_GRACE, self.http).await;
        // Checkpoints the WAL; a worker still grading past the drain time then fails to store its
        // result, and its job, still `running`, is re-queued at the next start.
        self.state.db.close().await;
        finished
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts it down gracefully.
pub async fn run(options: Options, engine: Arc<Engine>) -> Result<(), ServerError> {
    let server = start(options.clone(), Some(engine)).await?;
    eprintln!(
        "listening on http://{} with {} worker(s); data in {}",
        server.addr(),
        options.workers,
        options.data_dir.display()
    );
    let signal = shutdown_signal().await.map_err(|source| ServerError::Io {
        what: "cannot wait for signals".into(),
        source,
    })?;
    eprintln!(
        "{signal}: no more uploads; waiting up to {:?} for running gradings",
        options.drain
    );
    if server.shutdown().await {
        eprintln!("stopped cleanly");
    } else {
        eprintln!("stopped; unfinished gradings will be re-queued at the next start");
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM and names it.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
