//! The students' pages: the dashboard (upload form, their submissions, best and latest score) and
//! the form's upload (`POST /submissions`); instructors read any student's list.

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::{late_mark, page, scored, span, status_label, Layout, LoggedIn, PageError, Stamp};
use crate::server::api::accept_upload;
use crate::server::db::now_ms;
use crate::server::error::AppError;
use crate::server::AppState;

/// The students' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(dashboard))
        // The size limit is the server's own, checked while the upload streams in.
        .route(
            "/submissions",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/students/{id}", get(student))
}

/// One submission in a list.
pub struct Line {
    /// Its id.
    pub id: i64,
    /// When it was uploaded.
    pub when: Stamp,
    /// The uploaded file's name.
    pub file_name: String,
    /// Its status (for styling).
    pub status: String,
    /// The status in words.
    pub status_label: &'static str,
    /// `87/100`, when it has a score.
    pub score: Option<String>,
    score_value: Option<i64>,
    /// Its late mark (how late, the penalty), when it came after the deadline.
    pub late: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Brief {
    id: i64,
    created_at: i64,
    file_name: String,
    status: String,
    score: Option<i64>,
    max_score: Option<i64>,
    late_ms: Option<i64>,
    penalty_pct: i64,
}

/// Every submission of `person_id`, newest first.
async fn lines(state: &AppState, person_id: &str) -> Result<Vec<Line>, AppError> {
    let rows: Vec<Brief> = sqlx::query_as(
        // The score after the late penalty, as /api/me counts it (the same before, if none).
        "SELECT id, created_at, file_name, status, COALESCE(final_score, score) AS score, \
         max_score, late_ms, penalty_pct \
         FROM submissions \
         WHERE person_id = $1 ORDER BY id DESC",
    )
    .bind(person_id)
    .fetch_all(&state.db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let score = scored(&r.status).then_some(r.score).flatten();
            Line {
                id: r.id,
                when: Stamp::of(r.created_at),
                score: score.map(|s| format!("{s}/{}", r.max_score.unwrap_or(0))),
                score_value: score,
                late: late_mark(r.late_ms, r.penalty_pct),
                status_label: status_label(&r.status),
                status: r.status,
                file_name: r.file_name,
            }
        })
        .collect())
}

/// The best and the latest score of `lines` (newest first), as shown.
fn best_and_latest(lines: &[Line]) -> (Option<String>, Option<String>) {
    let best = lines
        .iter()
        .filter(|l| l.score_value.is_some())
        .max_by_key(|l| (l.score_value, std::cmp::Reverse(l.id)))
        .and_then(|l| l.score.clone());
    let latest = lines.iter().find_map(|l| l.score.clone());
    (best, latest)
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    layout: Layout,
    csrf: String,
    limit: String,
    rows: Vec<Line>,
    best: Option<String>,
    latest: Option<String>,
    quota: QuotaView,
    deadline: DeadlineView,
}

/// The rate limit as the dashboard states it.
struct QuotaView {
    /// The limit in words (`1 upload per 30 s, 30 per day`).
    limit: String,
    /// Uploads left in the last 24 hours' window, when there is a daily limit.
    left_today: Option<i64>,
    /// When the next upload is allowed, if not now, and how long that is from now.
    next_at: Option<(Stamp, String)>,
}

/// The deadline that applies to the student, as the dashboard states it.
struct DeadlineView {
    at: Option<Stamp>,
    /// `2 d 3 h left`, or `passed 4 h ago`.
    remaining: String,
    penalty_per_day: u32,
}

/// A size in words (`1 MiB`, `512 KiB`, `300 bytes`).
fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    match bytes {
        b if b >= KIB * KIB && b % (KIB * KIB) == 0 => format!("{} MiB", b / (KIB * KIB)),
        b if b >= KIB * KIB => format!("{:.1} MiB", b as f64 / (KIB * KIB) as f64),
        b if b >= KIB => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

/// `GET /dashboard`: the upload form and one's own submissions.
async fn dashboard(
    State(state): State<AppState>,
    session: LoggedIn,
) -> Result<Response, PageError> {
    let caller = &session.0.caller;
    let rows = lines(&state, &caller.id).await?;
    let (best, latest) = best_and_latest(&rows);
    let policy = &state.policy;
    let now = now_ms();
    let mut conn = state.db.acquire().await?;
    let quota = policy.quota(&mut conn, &caller.id, now).await?;
    let deadline = policy.deadline_for(&mut conn, &caller.id).await?;
    drop(conn);
    let limited = !caller.is_instructor();
    let quota = QuotaView {
        limit: if limited {
            policy.describe_limit()
        } else {
            String::new()
        },
        left_today: (limited && policy.per_day > 0)
            .then(|| (i64::from(policy.per_day) - quota.used_today).max(0)),
        next_at: quota
            .next_at
            .filter(|_| limited)
            .map(|at| (Stamp::of(at), span(at - now))),
    };
    let deadline = DeadlineView {
        at: deadline.map(Stamp::of),
        remaining: match deadline {
            Some(d) if d >= now => format!("{} left", span(d - now)),
            Some(d) => format!("passed {} ago", span(now - d)),
            None => String::new(),
        },
        penalty_per_day: policy.late_penalty_per_day,
    };
    page(
        StatusCode::OK,
        &Dashboard {
            quota,
            deadline,
            layout: Layout::of(&state, &session.0).await?,
            csrf: session.0.csrf.clone(),
            limit: size(state.upload_limit),
            rows,
            best,
            latest,
        },
    )
}

/// `POST /submissions`: the dashboard's form. Its first field is the CSRF token (the form puts it
/// before the file), so a forged form is refused before anything is stored; then the upload goes
/// the API's way and the browser is sent to the new submission's page.
async fn upload(
    State(state): State<AppState>,
    session: LoggedIn,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let mut multipart = multipart
        .map_err(|e| AppError::BadRequest(format!("malformed form: {}", e.body_text())))?;
    let first = multipart
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(format!("malformed form: {}", e.body_text())))?;
    let sent = match first {
        Some(field) if field.name() == Some("csrf") => field.text().await.unwrap_or_default(),
        _ => String::new(),
    };
    session.check(&sent)?;
    let accepted = accept_upload(&state, &session.0.caller, multipart).await?;
    Ok(Redirect::to(&format!("/submissions/{}", accepted.id)).into_response())
}

#[derive(Template)]
#[template(path = "student.html")]
struct StudentPage {
    layout: Layout,
    csrf: String,
    id: String,
    name: String,
    email: String,
    rows: Vec<Line>,
    best: Option<String>,
    latest: Option<String>,
}

/// `GET /students/{id}`: a student's submissions, for instructors (404 for students).
async fn student(
    State(state): State<AppState>,
    session: LoggedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    if !session.0.caller.is_instructor() {
        return Err(AppError::NotFound.into());
    }
    let (name, email): (String, String) =
        sqlx::query_as("SELECT name, email FROM people WHERE id = $1")
            .bind(&id)
            .fetch_optional(&state.db)
            .await?
            .ok_or(AppError::NotFound)?;
    let rows = lines(&state, &id).await?;
    let (best, latest) = best_and_latest(&rows);
    page(
        StatusCode::OK,
        &StudentPage {
            layout: Layout::of(&state, &session.0).await?,
            csrf: session.0.csrf.clone(),
            id,
            name,
            email,
            rows,
            best,
            latest,
        },
    )
}
