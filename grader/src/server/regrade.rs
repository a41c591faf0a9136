//! Regrades (instructors): one submission, one student's, or everything, queued behind fresh uploads
//! (`POST /api/regrades`), and their progress (`GET /api/regrades/{id}`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::auth::Caller;
use super::db::{now_ms, write};
use super::error::AppError;
use super::queue::{self, REGRADE_PRIORITY};
use super::time::format_ms;
use super::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/regrades", post(request))
        .route("/api/regrades/{id}", get(progress))
}

/// Body of `POST /api/regrades`: exactly one of the three.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scope {
    submission: Option<i64>,
    person: Option<String>,
    #[serde(default)]
    all: bool,
}

/// The condition on submissions `s` of a scope `?1` (`all`, `submission` or `person`) with value
/// `?2` (text: SQLite compares it with the integer id numerically).
macro_rules! in_scope {
    () => {
        // $2 is text for both kinds: PostgreSQL gives a parameter one type.
        "($1 = 'all' OR ($1 = 'submission' AND CAST(s.id AS TEXT) = $2) \
         OR ($1 NOT IN ('all', 'submission') AND s.person_id = $2))"
    };
}

const HOW: &str = "send one of {\"submission\": ID}, {\"person\": ID} or {\"all\": true}";

/// What a regrade covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One submission.
    Submission(i64),
    /// Every submission of one person.
    Person(String),
    /// Every submission.
    All,
}

impl Target {
    /// The target a request names with exactly one of its three fields (`None` otherwise).
    pub fn of(submission: Option<i64>, person: Option<String>, all: bool) -> Option<Target> {
        match (submission, person, all) {
            (Some(id), None, false) => Some(Target::Submission(id)),
            (None, Some(p), false) => Some(Target::Person(p)),
            (None, None, true) => Some(Target::All),
            _ => None,
        }
    }
}

/// A regrade just requested.
#[derive(Debug)]
pub struct Queued {
    /// Its id (for [`progress_of`]).
    pub id: i64,
    /// Its scope in words (`submission 3`, `person s1`, `all`).
    pub scope: String,
    /// Gradings queued.
    pub queued: i64,
    /// Submissions in scope already waiting for a grading.
    pub skipped: i64,
}

/// Queues, for `requested_by`, a regrade of every submission in `target` that is not already
/// waiting for a grading (404 when a submission or person has none).
pub async fn queue(
    state: &AppState,
    requested_by: &str,
    target: Target,
) -> Result<Queued, AppError> {
    if !state.accepting() {
        return Err(AppError::ShuttingDown);
    }
    let (kind, value) = match target {
        Target::Submission(id) => ("submission", id.to_string()),
        Target::Person(p) => ("person", p),
        Target::All => ("all", String::new()),
    };
    let described = format!("{kind} {value}").trim_end().to_string();
    let now = now_ms();
    let mut tx = write(&state.db).await?;
    let (in_scope,): (i64,) = sqlx::query_as(concat!(
        "SELECT COUNT(*) FROM submissions s WHERE ",
        in_scope!()
    ))
    .bind(kind)
    .bind(&value)
    .fetch_one(&mut *tx)
    .await?;
    if in_scope == 0 && kind != "all" {
        return Err(AppError::NotFound);
    }
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO regrades (requested_by, scope, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(requested_by)
    .bind(&described)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let queued = sqlx::query(concat!(
        "INSERT INTO jobs (submission_id, kind, state, priority, created_at, regrade_id) \
         SELECT s.id, 'regrade', 'queued', $3, $4, $5 FROM submissions s WHERE ",
        in_scope!(),
        " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.submission_id = s.id \
         AND j.state IN ('queued', 'running')) ORDER BY s.id"
    ))
    .bind(kind)
    .bind(&value)
    .bind(REGRADE_PRIORITY)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    queue::announce(&mut tx).await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    let queued = i64::try_from(queued).unwrap_or(i64::MAX);
    Ok(Queued {
        id,
        scope: described,
        queued,
        // Already waiting for a grading, which will use the current hidden tests anyway.
        skipped: in_scope - queued,
    })
}

/// Queues a regrade of every submission in scope that is not already waiting for a grading.
async fn request(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Scope>, JsonRejection>,
) -> Result<Response, AppError> {
    if !caller.is_instructor() {
        return Err(AppError::Forbidden);
    }
    if !state.accepting() {
        return Err(AppError::ShuttingDown);
    }
    let Json(scope) =
        body.map_err(|e| AppError::BadRequest(format!("{}; {HOW}", e.body_text())))?;
    let target = Target::of(scope.submission, scope.person, scope.all)
        .ok_or_else(|| AppError::BadRequest(HOW.into()))?;
    let queued = queue(&state, &caller.id, target).await?;
    let location = format!("/api/regrades/{}", queued.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location.clone())],
        Json(json!({
            "id": queued.id,
            "scope": queued.scope,
            "queued": queued.queued,
            "skipped": queued.skipped,
            "urls": {"self": location},
        })),
    )
        .into_response())
}

/// How far a regrade got.
#[derive(Debug, Serialize)]
pub struct Progress {
    /// The regrade's id.
    pub id: i64,
    /// Its scope in words.
    pub scope: String,
    /// Who asked for it.
    pub requested_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// Gradings it queued.
    pub total: i64,
    /// Still waiting.
    pub queued: i64,
    /// Being graded.
    pub running: i64,
    /// Graded.
    pub done: i64,
    /// Failed.
    pub error: i64,
    /// Nothing left to do.
    pub finished: bool,
}

/// The progress of regrade `id` (404 when there is none).
pub async fn progress_of(state: &AppState, id: i64) -> Result<Progress, AppError> {
    let head: Option<(String, String, i64)> =
        sqlx::query_as("SELECT requested_by, scope, created_at FROM regrades WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db)
            .await?;
    let (requested_by, scope, created_at) = head.ok_or(AppError::NotFound)?;
    let (total, queued, running, done, error): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'queued'), \
         COUNT(*) FILTER (WHERE state = 'running'), COUNT(*) FILTER (WHERE state = 'done'), \
         COUNT(*) FILTER (WHERE state = 'error') FROM jobs WHERE regrade_id = $1",
    )
    .bind(id)
    .fetch_one(&state.db)
    .await?;
    Ok(Progress {
        id,
        scope,
        requested_by,
        created_at: format_ms(created_at),
        total,
        queued,
        running,
        done,
        error,
        finished: queued + running == 0,
    })
}

/// `GET /api/regrades/{id}`: how far a regrade got.
async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Progress>, AppError> {
    if !caller.is_instructor() {
        return Err(AppError::Forbidden);
    }
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    Ok(Json(progress_of(&state, id).await?))
}
