//! The JSON API: uploads (`POST /api/submissions`), the caller's submissions, one submission (the
//! student's view for students, everything for instructors) and its live events.

use std::convert::Infallible;

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::sync::broadcast::error::RecvError;

use super::auth::Caller;
use super::db::{now_ms, write, Backend};
use super::error::AppError;
use super::events::Update;
use super::queue::{self, UPLOAD_PRIORITY};
use super::uploads;
use super::AppState;
use crate::engine::report::Report;

/// The API's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/submissions",
            // The size limit is the server's own, checked while the upload streams in.
            post(upload).layer(DefaultBodyLimit::disable()).get(list),
        )
        .route("/api/submissions/{id}", get(show))
        .route("/api/submissions/{id}/upload", get(download))
        .route("/api/submissions/{id}/events", get(events))
}

/// One row of `submissions`.
#[derive(Debug, sqlx::FromRow)]
pub struct Row {
    /// The submission id.
    pub id: i64,
    /// Whose it is.
    pub person_id: String,
    /// When it was uploaded (Unix ms).
    pub created_at: i64,
    /// The uploaded file's name.
    pub file_name: String,
    /// Its size.
    pub size_bytes: i64,
    /// SHA-256 of the stored file.
    pub sha256: String,
    /// `queued`, `running`, `graded`, `rejected`, `build_failed` or `error`.
    pub status: String,
    /// Points earned (with a report).
    pub score: Option<i64>,
    /// Points possible (with a report).
    pub max_score: Option<i64>,
    /// The JSON report of the latest grading.
    pub report: Option<String>,
    /// Version of the hidden tests that graded it.
    pub hidden_version: Option<String>,
    /// When it was graded (Unix ms).
    pub graded_at: Option<i64>,
    /// Why grading itself failed (instructors only).
    pub error: Option<String>,
    /// How late it came (ms after the student's deadline), if late.
    pub late_ms: Option<i64>,
    /// The late penalty it earned, in percent (fixed at upload).
    pub penalty_pct: i64,
    /// The score after that penalty.
    pub final_score: Option<i64>,
}

/// A static query reading [`Row`]s: every column, then `$rest`.
macro_rules! select_rows {
    ($rest:literal) => {
        concat!(
            "SELECT id, person_id, created_at, file_name, size_bytes, sha256, status, score, ",
            "max_score, report, hidden_version, graded_at, error, late_ms, penalty_pct, final_score ",
            "FROM submissions ",
            $rest
        )
    };
}

/// What a student reads when grading itself failed.
pub const ERROR_FOR_STUDENT: &str = "Grading failed on the server's side. This is not your score: \
                                     the instructors have been told and will regrade it.";

fn urls(id: i64) -> Value {
    json!({
        "self": format!("/api/submissions/{id}"),
        "report": format!("/api/submissions/{id}"),
        "events": format!("/api/submissions/{id}/events"),
        "upload": format!("/api/submissions/{id}/upload"),
    })
}

/// The last component of the uploaded file's name, bounded: it is only shown and used for its
/// extension.
fn clean_file_name(name: Option<&str>) -> String {
    let name = name
        .unwrap_or("upload")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("upload");
    let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    if name.is_empty() {
        "upload".into()
    } else {
        name
    }
}

fn from_multipart(limit: u64) -> impl Fn(MultipartError) -> AppError {
    move |e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(limit)
        } else {
            AppError::BadRequest(format!("malformed upload: {}", e.body_text()))
        }
    }
}

/// A stored and queued upload.
#[derive(Debug)]
pub struct Accepted {
    /// The new submission.
    pub id: i64,
    /// Its place in the queue.
    pub position: Option<i64>,
    /// SHA-256 of the stored file.
    pub sha256: String,
    /// Its size.
    pub size_bytes: u64,
    /// How late it came (ms after the student's deadline), if late.
    pub late_ms: Option<i64>,
    /// The late penalty it earned, in percent.
    pub penalty_pct: i64,
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let multipart = multipart.map_err(|e| {
        AppError::BadRequest(format!(
            "{}; send the archive as a multipart form field `file` (curl -F file=@02_runtime.tar.gz)",
            e.body_text()
        ))
    })?;
    let accepted = accept_upload(&state, &caller, multipart).await?;
    let id = accepted.id;
    let location = format!("/api/submissions/{id}");
    let body = json!({
        "id": id,
        "status": "queued",
        "position": accepted.position,
        "sha256": accepted.sha256,
        "size_bytes": accepted.size_bytes,
        "late": accepted.late_ms.is_some(),
        "late_ms": accepted.late_ms,
        "penalty_pct": accepted.penalty_pct,
        "urls": urls(id),
    });
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// Streams the form field `file` of `multipart` to the uploads folder (within the size limit),
/// records the submission and queues its grading: the API's upload and the web form's.
pub async fn accept_upload(
    state: &AppState,
    caller: &Caller,
    mut multipart: Multipart,
) -> Result<Accepted, AppError> {
    if !state.accepting() {
        return Err(AppError::ShuttingDown);
    }
    // Refused before the body is read; checked again below, where it counts.
    {
        let mut conn = state.db.acquire().await?;
        state.policy.admit(&mut conn, caller, now_ms()).await?;
    }
    let limit = state.upload_limit;
    let to_app = from_multipart(limit);
    let mut stored = None;
    while let Some(mut field) = multipart.next_field().await.map_err(&to_app)? {
        if field.name() != Some("file") {
            continue;
        }
        let file_name = clean_file_name(field.file_name());
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(&to_app)? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                // Answered before the rest is read.
                return Err(AppError::TooLarge(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        stored = Some((bytes, file_name, sha256));
        break;
    }
    let (bytes, file_name, sha256) = stored.ok_or_else(|| {
        AppError::BadRequest(
            "no file in the upload: send the archive as the form field `file` \
             (curl -F file=@02_runtime.tar.gz)"
                .into(),
        )
    })?;
    let mut tx = write(&state.db).await?;
    // Inside the write transaction: concurrent uploads of one student are counted one by one.
    let now = now_ms();
    state.policy.admit(&mut tx, caller, now).await?;
    let deadline = state.policy.deadline_for(&mut tx, &caller.id).await?;
    let (late_ms, penalty_pct) = state.policy.lateness(deadline, now);
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO submissions (person_id, created_at, file_name, size_bytes, sha256, status, \
         late_ms, penalty_pct) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7) RETURNING id",
    )
    .bind(&caller.id)
    .bind(now)
    .bind(&file_name)
    .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
    .bind(&sha256)
    .bind(late_ms)
    .bind(i64::from(penalty_pct))
    .fetch_one(&mut *tx)
    .await?;
    tracing::Span::current().record("submission", id);
    // The bytes commit with the row: no submission without its upload, no orphan upload.
    uploads::store(&mut tx, id, &bytes).await?;
    queue::enqueue(&mut tx, id, UPLOAD_PRIORITY).await?;
    tx.commit().await?;
    state.gradebook.invalidate();
    state.wake.notify_one();
    let position = queue::position(&state.db, id).await?;
    Ok(Accepted {
        id,
        position,
        sha256,
        size_bytes: bytes.len() as u64,
        late_ms,
        penalty_pct: penalty_pct.into(),
    })
}

/// A submission the caller may see: their own, or any for instructors; anything else is 404 so
/// that ids of other students' submissions reveal nothing.
pub async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<Row, AppError> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let row: Option<Row> = sqlx::query_as(select_rows!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.db)
        .await?;
    row.filter(|r| caller.is_instructor() || r.person_id == caller.id)
        .ok_or(AppError::NotFound)
}

/// The JSON of a submission, without its report.
async fn view(state: &AppState, caller: &Caller, row: &Row) -> Result<Value, AppError> {
    // Whatever the status: a regrade waits in the queue while the previous result stands.
    let position = queue::position(&state.db, row.id).await?;
    let mut v = json!({
        "id": row.id,
        "created_at": row.created_at,
        "file_name": &row.file_name,
        "size_bytes": row.size_bytes,
        "sha256": &row.sha256,
        "status": &row.status,
        "position": position,
        "graded_at": row.graded_at,
        "late": row.late_ms.is_some(),
        "late_ms": row.late_ms,
        "penalty_pct": row.penalty_pct,
        "urls": urls(row.id),
    });
    // An internal error is never shown as a score.
    if row.status != "error" {
        v["score"] = json!(row.score);
        v["final_score"] = json!(row.final_score);
        v["max_score"] = json!(row.max_score);
    } else if !caller.is_instructor() {
        v["message"] = json!(ERROR_FOR_STUDENT);
    }
    if caller.is_instructor() {
        v["person"] = json!(&row.person_id);
        v["hidden_tests_version"] = json!(&row.hidden_version);
        v["error"] = json!(&row.error);
    }
    Ok(v)
}

/// A submission with its report (as the caller may see it), serialised without an intermediate
/// JSON tree of the report.
#[derive(Debug, serde::Serialize)]
struct Shown {
    #[serde(flatten)]
    submission: Value,
    report: Option<Report>,
}

/// Query of `GET /api/submissions/{id}`.
#[derive(Debug, serde::Deserialize)]
struct ShowQuery {
    /// `full`: the instructors' view (hidden tests named, with their output); 403 for students.
    view: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Json<Shown>, AppError> {
    let row = visible(&state, &caller, &id).await?;
    match query.view.as_deref() {
        None | Some("student") => {}
        Some("full") if caller.is_instructor() => {}
        Some("full") => return Err(AppError::Forbidden),
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "unknown view {other:?}: use `full` or `student`"
            )))
        }
    }
    // Instructors asking for the student view see what the student sees.
    let as_student;
    let caller = if query.view.as_deref() == Some("student") && caller.is_instructor() {
        as_student = Caller {
            role: super::auth::Role::Student,
            ..caller
        };
        &as_student
    } else {
        &caller
    };
    let report = match row.report.as_deref() {
        None => None,
        Some(text) => {
            let report: Report = serde_json::from_str(text).map_err(|e| {
                AppError::Internal(format!("stored report of submission {}: {e}", row.id))
            })?;
            Some(if caller.is_instructor() {
                report
            } else {
                report.for_student()
            })
        }
    };
    Ok(Json(Shown {
        submission: view(&state, caller, &row).await?,
        report,
    }))
}

/// `GET /api/submissions/{id}/upload`: the uploaded file as it was stored (its owner's, or any
/// for instructors).
async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let row = visible(&state, &caller, &id).await?;
    let bytes = uploads::read(&state.db, &state.data_dir, row.id)
        .await?
        .ok_or_else(|| {
            AppError::Internal(format!("the upload of submission {} is missing", row.id))
        })?;
    // The stored name is the client's: only safe characters go into the header.
    let name: String = row
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, AppError> {
    let rows: Vec<Row> = sqlx::query_as(select_rows!("WHERE person_id = $1 ORDER BY id DESC"))
        .bind(&caller.id)
        .fetch_all(&state.db)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(view(&state, &caller, &row).await?);
    }
    Ok(Json(json!({ "submissions": out })))
}

/// The submission's state now, as an update.
async fn current(state: &AppState, id: i64) -> Result<Update, AppError> {
    // Counts the report's tests without reading it into the server; each database spells it.
    let query = match Backend::of(&state.db) {
        Backend::Sqlite => {
            "SELECT status, score, max_score, json_array_length(report, '$.tests') \
             FROM submissions WHERE id = $1"
        }
        Backend::Postgres => {
            "SELECT status, score, max_score, json_array_length(CAST(report AS JSON) -> 'tests') \
             FROM submissions WHERE id = $1"
        }
    };
    let (status, score, max_score, tests): (String, Option<i64>, Option<i64>, Option<i64>) =
        sqlx::query_as(query).bind(id).fetch_one(&state.db).await?;
    let tests = tests.map_or_else(
        || state.hidden_test_count(),
        |t| usize::try_from(t).unwrap_or(0),
    );
    Ok(match status.as_str() {
        "queued" => Update::Queued {
            position: queue::position(&state.db, id).await?.unwrap_or(1),
        },
        "running" => Update::Checking,
        "error" => Update::Done {
            status,
            score: None,
            max_score: None,
            step: Update::done_step(state.hidden_test_count()),
        },
        _ => Update::Done {
            status,
            score,
            max_score,
            step: Update::done_step(tests),
        },
    })
}

/// What one event stream has left to do.
struct Listener {
    state: AppState,
    id: i64,
    rx: tokio::sync::broadcast::Receiver<(i64, Update)>,
    next: Option<Update>,
    /// The last step the client saw (its `Last-Event-ID`, then what it was sent).
    last: Option<u64>,
    queued: bool,
    done: bool,
}

impl Listener {
    /// The next update of this submission, or `None` when the stream should end.
    async fn next_update(&mut self) -> Option<Update> {
        if let Some(u) = self.next.take() {
            return Some(u);
        }
        loop {
            match self.rx.recv().await {
                Ok((sid, u)) if sid == self.id => return Some(u),
                // Another job started: a waiting submission moved up.
                Ok((_, Update::Checking)) if self.queued => {
                    if let Ok(Some(position)) = queue::position(&self.state.db, self.id).await {
                        return Some(Update::Queued { position });
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return current(&self.state, self.id).await.ok(),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// `GET /api/submissions/{id}/events`: server-sent events, starting with the current state and
/// ending after `done`. Each event's id is its [`Update::step`]; a client reconnecting with
/// `Last-Event-ID` gets only what came after, and one that already saw `done` gets 204 (which
/// tells a browser's `EventSource` to stop reconnecting).
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let row = visible(&state, &caller, &id).await?;
    // Subscribed before the state is read: nothing between the two is missed.
    let rx = state.events.subscribe();
    let first = current(&state, row.id).await?;
    if matches!(first, Update::Done { .. }) && !first.is_after(last) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let listener = Listener {
        state,
        id: row.id,
        rx,
        next: Some(first),
        last,
        queued: false,
        done: false,
    };
    let stream = futures_util::stream::unfold(listener, |mut l| async move {
        if l.done {
            return None;
        }
        let update = loop {
            let update = l.next_update().await?;
            if update.is_after(l.last) {
                break update;
            }
        };
        l.queued = matches!(update, Update::Queued { .. });
        l.done = matches!(update, Update::Done { .. });
        if !l.queued {
            l.last = Some(update.step());
        }
        let data = serde_json::to_string(&update).expect("updates serialise");
        let event = Event::default()
            .event(update.name())
            .id(update.step().to_string())
            .data(data);
        Some((Ok::<_, Infallible>(event), l))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
