//! `GET /metrics` in the Prometheus text format: HTTP requests by route and status, gradings by
//! outcome, grading and queue-wait duration histograms (kept in memory since start: this process's
//! own workers only), and, read from the shared database at each scrape, the queue, submissions by
//! status and the grading processes alive on any machine.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::cluster;
use super::error::AppError;
use super::AppState;

/// Upper bounds (seconds) of the duration histograms: from a cached rejection to a slow build.
const BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// A cumulative histogram over [`BUCKETS`].
#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&mut self.counts) {
            if s <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (route, status) -> requests.
    http: BTreeMap<(String, u16), u64>,
    /// Outcome (graded, rejected, build_failed, retried, error) -> gradings.
    gradings: BTreeMap<&'static str, u64>,
    grading: Histogram,
    queue_wait: Histogram,
}

/// The server's counters since start.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding the lock leaves plain counters: still usable.
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Counts a finished grading by `outcome`, which took `took` after waiting `waited` in the
    /// queue.
    pub fn grading(&self, outcome: &'static str, waited: Duration, took: Duration) {
        self.with(|m| {
            *m.gradings.entry(outcome).or_default() += 1;
            m.grading.observe(took);
            m.queue_wait.observe(waited);
        });
    }

    fn request(&self, route: String, status: u16) {
        self.with(|m| *m.http.entry((route, status)).or_default() += 1);
    }
}

/// Middleware counting each request by its route pattern (never the raw path: ids would make
/// one series per submission) and status.
pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state.metrics.request(route, response.status().as_u16());
    response
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let jobs: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT kind, state, COUNT(*) FROM jobs WHERE state IN ('queued', 'running') GROUP BY kind, state")
            .fetch_all(&state.db)
            .await?;
    let submissions: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM submissions GROUP BY status")
            .fetch_all(&state.db)
            .await?;
    let (processes, slots) = cluster::alive(&state.db, state.lease).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP grader_worker_processes Grading processes (any machine) that beat within a lease.\n\
         # TYPE grader_worker_processes gauge\ngrader_worker_processes {processes}\n\
         # HELP grader_worker_slots Their workers (jobs they can grade at once).\n\
         # TYPE grader_worker_slots gauge\ngrader_worker_slots {slots}"
    );
    out.push_str("# HELP grader_jobs Jobs waiting or running, by kind and state.\n# TYPE grader_jobs gauge\n");
    for kind in ["grade", "regrade"] {
        for st in ["queued", "running"] {
            let n = jobs
                .iter()
                .find(|(k, s, _)| k == kind && s == st)
                .map_or(0, |j| j.2);
            let _ = writeln!(out, "grader_jobs{{kind=\"{kind}\",state=\"{st}\"}} {n}");
        }
    }
    out.push_str(
        "# HELP grader_submissions Submissions by status.\n# TYPE grader_submissions gauge\n",
    );
    for (status, n) in &submissions {
        let _ = writeln!(out, "grader_submissions{{status=\"{status}\"}} {n}");
    }
    state.metrics.with(|m| {
        out.push_str("# HELP grader_gradings_total Gradings since start, by outcome.\n# TYPE grader_gradings_total counter\n");
        for (outcome, n) in &m.gradings {
            let _ = writeln!(out, "grader_gradings_total{{outcome=\"{outcome}\"}} {n}");
        }
        m.grading.render(&mut out, "grader_grading_seconds", "Time a worker of this process spent on one grading.");
        m.queue_wait.render(&mut out, "grader_queue_wait_seconds", "Time a job waited in the queue before a worker claimed it.");
        out.push_str("# HELP grader_http_requests_total HTTP requests since start, by route and status.\n# TYPE grader_http_requests_total counter\n");
        for ((route, status), n) in &m.http {
            let _ = writeln!(out, "grader_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
