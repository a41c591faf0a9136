//! The grading server (`grader serve`): a JSON API over a durable SQLite queue, with workers that
//! grade through the [`Engine`](crate::engine::Engine).
//!
//! Layers: [`db`] (the database) <- [`auth`], [`queue`], [`roster`] <- [`worker`], [`api`], [`gradebook`] <- this
//! module ([`app`], [`start`], [`run`]).

pub mod api;
pub mod auth;
pub mod db;
pub mod error;
pub mod events;
pub mod gradebook;
pub mod queue;
pub mod roster;
pub mod web;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use sqlx::SqlitePool;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

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
    accepting: Arc<AtomicBool>,
}

impl AppState {
    /// Whether uploads are taken (false once shutdown began).
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
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
        .merge(api::router())
        .merge(gradebook::router())
        .merge(web::router())
        // Failures are logged where they happen (internal errors) or are expected (503 while
        // shutting down); the trace is for `RUST_LOG=tower_http=debug`.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}

/// `GET /healthz`: 200 when the database answers.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match sqlx::query("SELECT 1").execute(&state.db).await {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "error": e.to_string()})),
        ),
    }
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
