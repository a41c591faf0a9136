//! The grading server (`grader serve`): a JSON API over a durable queue in SQLite or PostgreSQL,
//! with workers that grade through the [`Engine`](crate::engine::Engine); and `grader worker`, the
//! same workers without the HTTP side, for many machines sharing one PostgreSQL database.
//!
//! Layers: [`db`] (the database) <- [`auth`], [`queue`], [`uploads`], [`roster`], [`policy`] <-
//! [`worker`], [`cluster`], [`api`], [`gradebook`], [`regrade`], [`metrics`] <- this module
//! ([`app`], [`start`], [`run`]).

pub mod api;
pub mod auth;
pub mod cluster;
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
pub mod uploads;
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
use sqlx::AnyPool;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};

use crate::engine::Engine;

/// Shared by every request and worker.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: AnyPool,
    /// The data folder.
    pub data_dir: PathBuf,
    /// Largest accepted upload, in bytes.
    pub upload_limit: u64,
    /// Wait before the first retry of a grading that failed inside the grader (doubling after).
    pub retry_delay: Duration,
    /// How long a claimed job stays its worker's without a heartbeat.
    pub lease: Duration,
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
    /// See [`Options::rubric_entries`].
    rubric_entries: usize,
    accepting: Arc<AtomicBool>,
}

impl AppState {
    /// Whether uploads are taken (false once shutdown began).
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// The number of rubric entries a grading runs (without an engine, as the options said):
    /// bounds the steps of its progress events.
    pub fn hidden_test_count(&self) -> usize {
        self.engine
            .as_ref()
            .and_then(|e| e.rubric())
            .map_or(self.rubric_entries, |r| r.entries().len())
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

/// `GET /healthz`: the database answers, grading can happen (local workers with the sandbox, or,
/// on PostgreSQL, a `grader worker` that beat within a lease), and the queue's depth; 503 when
/// nothing can grade or no uploads are taken.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let queue: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE state = 'queued'), COUNT(*) FILTER (WHERE state = 'running') \
         FROM jobs WHERE state IN ('queued', 'running')",
    )
    .fetch_one(&state.db)
    .await;
    let local = state.engine.is_some() && state.workers > 0;
    // Other processes' workers count only on PostgreSQL (a SQLite file has one process), and
    // only by their heartbeat: a row alone says nothing.
    let remote = match db::Backend::of(&state.db) {
        db::Backend::Postgres => cluster::alive(&state.db, state.lease).await.map(Some),
        db::Backend::Sqlite => Ok(None),
    };
    let accepting = state.accepting();
    let (database, queued, running) = match queue {
        Ok((q, r)) => (serde_json::json!("ok"), Some(q), Some(r)),
        Err(e) => {
            tracing::error!("health check: database: {e}");
            (serde_json::json!("unavailable"), None, None)
        }
    };
    let (processes, slots) = match remote {
        Ok(Some((p, s))) => (Some(p), Some(s)),
        Ok(None) => (None, None),
        Err(e) => {
            tracing::error!("health check: workers: {e}");
            (None, None)
        }
    };
    let grading = local || processes.is_some_and(|p| p > 0);
    let ready = queued.is_some() && grading && accepting;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let sandbox = if local {
        "ready"
    } else if grading {
        "remote workers"
    } else {
        "no workers"
    };
    (
        status,
        Json(serde_json::json!({
            "status": if ready { "ok" } else { "unavailable" },
            "database": database,
            "sandbox": sandbox,
            "accepting_uploads": accepting,
            "queue": {"queued": queued, "running": running},
            "workers": {"local": state.workers, "processes_alive": processes, "slots_alive": slots},
        })),
    )
}

/// How to run the server or a worker process.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data folder (the engine's caches; the SQLite database by default).
    pub data_dir: PathBuf,
    /// The database URL (`None`: `sqlite://DATA_DIR/grader.db`).
    pub database: Option<String>,
    /// Address to listen on (port 0: any free port; `None`: no HTTP, as `grader worker`).
    pub bind: Option<SocketAddr>,
    /// Grading workers (0: none; jobs wait, or other processes grade them).
    pub workers: usize,
    /// Largest accepted upload, in bytes.
    pub upload_limit: u64,
    /// How long shutdown waits for running gradings.
    pub drain: Duration,
    /// Wait before the first retry of an internal grading error (doubling after).
    pub retry_delay: Duration,
    /// How long a claimed job stays its worker's without a heartbeat.
    pub lease: Duration,
    /// The hidden tests' rubric entries, when no engine is given (a web tier whose gradings run
    /// elsewhere): they bound the steps of progress events.
    pub rubric_entries: usize,
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

/// A running server or worker process.
pub struct Server {
    addr: Option<SocketAddr>,
    state: AppState,
    drain: Duration,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    /// Records this process's heartbeat and hands back expired leases; stops with the workers.
    keeper: JoinHandle<()>,
    /// The PostgreSQL relays: aborted at the end.
    relays: Vec<JoinHandle<()>>,
    http: Option<(
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<std::io::Result<()>>,
    )>,
}

/// Opens the database, re-queues what a crash left running (SQLite: this process owns the
/// queue), and starts the listener (unless `options.bind` is `None`) and `options.workers`
/// workers grading with `engine` (without an engine no worker runs: jobs wait, which is how the
/// tests look at the queue itself). On PostgreSQL it also relays job wake-ups and progress
/// between processes.
pub async fn start(options: Options, engine: Option<Arc<Engine>>) -> Result<Server, ServerError> {
    std::fs::create_dir_all(&options.data_dir).map_err(|source| ServerError::Io {
        what: format!("cannot create {}", options.data_dir.display()),
        source,
    })?;
    let url = options
        .database
        .clone()
        .unwrap_or_else(|| db::default_url(&options.data_dir));
    let db = db::connect(&url).await?;
    let backend = db::Backend::of(&db);
    if backend == db::Backend::Sqlite {
        let requeued = queue::requeue_running(&db).await?;
        if requeued > 0 {
            tracing::warn!("re-queued {requeued} job(s) left running by the previous run");
        }
    }
    let workers = if engine.is_some() { options.workers } else { 0 };
    let state = AppState {
        db,
        data_dir: options.data_dir.clone(),
        upload_limit: options.upload_limit,
        retry_delay: options.retry_delay,
        lease: options.lease,
        wake: Arc::new(Notify::new()),
        events: events::Hub::default(),
        policy: Arc::new(options.policy.clone()),
        metrics: Arc::default(),
        gradebook: Arc::default(),
        workers,
        rubric_entries: options.rubric_entries,
        engine: engine.clone(),
        accepting: Arc::new(AtomicBool::new(true)),
    };
    let listener = match options.bind {
        Some(bind) => Some(
            tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|source| ServerError::Io {
                    what: format!("cannot listen on {bind}"),
                    source,
                })?,
        ),
        None => None,
    };
    let addr = match &listener {
        Some(l) => Some(l.local_addr().map_err(|source| ServerError::Io {
            what: "cannot read the listening address".into(),
            source,
        })?),
        None => None,
    };
    let process = cluster::process_name();
    let (stop, stop_rx) = watch::channel(false);
    let mut relays = Vec::new();
    if backend == db::Backend::Postgres {
        relays.push(tokio::spawn(cluster::listen(
            url,
            process.clone(),
            state.events.clone(),
            Arc::clone(&state.wake),
            Arc::clone(&state.gradebook),
            stop_rx.clone(),
        )));
        if workers > 0 {
            relays.push(tokio::spawn(cluster::publish(
                state.events.clone(),
                state.db.clone(),
                process.clone(),
            )));
        }
    }
    let keeper = tokio::spawn(cluster::keep(
        state.db.clone(),
        process.clone(),
        workers,
        options.lease,
        stop_rx.clone(),
    ));
    let workers = match engine {
        Some(engine) => (0..workers)
            .map(|i| {
                tokio::spawn(worker::run(
                    state.clone(),
                    Arc::clone(&engine),
                    format!("{process}/worker-{i}"),
                    stop_rx.clone(),
                ))
            })
            .collect(),
        None => Vec::new(),
    };
    let http = listener.map(|listener| {
        let (stop_http, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
        let router = app(state.clone());
        let http = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stop_http_rx.await;
                })
                .await
        });
        (stop_http, http)
    });
    Ok(Server {
        addr,
        state,
        drain: options.drain,
        stop,
        workers,
        keeper,
        relays,
        http,
    })
}

/// How long the listener gets, after the workers, to finish answering requests.
const HTTP_GRACE: Duration = Duration::from_secs(5);

impl Server {
    /// The address it listens on (`None` for a worker process).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Its state (database, events).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops taking uploads (503), lets running gradings finish for at most the drain time, then
    /// stops the listener. Returns whether every grading finished in time (one that did not stays
    /// `running` in the database: re-queued at the next start on SQLite, when its lease runs out
    /// on PostgreSQL).
    pub async fn shutdown(self) -> bool {
        self.state.accepting.store(false, Ordering::SeqCst);
        let _ = self.stop.send(true);
        let workers = futures_util::future::join_all(self.workers);
        let finished = tokio::time::timeout(self.drain, workers).await.is_ok();
        let _ = self.keeper.await;
        if let Some((stop_http, http)) = self.http {
            let _ = stop_http.send(());
            // Event streams may hold connections open; they are cut after the grace period.
            let _ = tokio::time::timeout(HTTP_GRACE, http).await;
        }
        for relay in self.relays {
            relay.abort();
        }
        // Checkpoints SQLite's WAL; a worker still grading past the drain time then fails to
        // store its result, and its job, still `running`, is handed back as said above.
        self.state.db.close().await;
        finished
    }
}

/// Runs the server (or, without `options.bind`, a worker process) until SIGINT or SIGTERM, then
/// shuts it down gracefully. Without an engine no worker runs (a web tier whose gradings run in
/// `grader worker` processes).
pub async fn run(options: Options, engine: Option<Arc<Engine>>) -> Result<(), ServerError> {
    let server = start(options.clone(), engine).await?;
    let database = options
        .database
        .as_deref()
        .map_or_else(|| db::DB_FILE.to_string(), db::shown);
    match server.addr() {
        Some(addr) => eprintln!(
            "listening on http://{addr} with {} worker(s); data in {}; database {database}",
            options.workers,
            options.data_dir.display()
        ),
        None => eprintln!(
            "grading with {} worker(s) from {database}; caches in {}",
            options.workers,
            options.data_dir.display()
        ),
    }
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
        eprintln!("stopped; unfinished gradings will be graded again");
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
