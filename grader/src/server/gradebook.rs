//! The instructors' gradebook (`GET /api/gradebook`): every student on the roster with their
//! submissions' count, latest and best score. Students get 403.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::auth::Caller;
use super::error::AppError;
use super::AppState;

/// The gradebook's routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/gradebook", get(gradebook))
}

/// One student's line.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct Line {
    id: String,
    name: String,
    email: String,
    submissions: i64,
    /// The latest submission, whatever its status.
    latest_id: Option<i64>,
    latest_status: Option<String>,
    /// Its score, when grading produced a report (an internal error has none).
    latest_score: Option<i64>,
    /// The best score of any report.
    best_score: Option<i64>,
}

async fn gradebook(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, AppError> {
    if !caller.is_instructor() {
        return Err(AppError::Forbidden);
    }
    let lines: Vec<Line> = sqlx::query_as(
        "SELECT p.id, p.name, p.email, \
           (SELECT COUNT(*) FROM submissions s WHERE s.person_id = p.id) AS submissions, \
           l.id AS latest_id, l.status AS latest_status, \
           CASE WHEN l.status = 'error' THEN NULL ELSE l.score END AS latest_score, \
           (SELECT MAX(s.score) FROM submissions s WHERE s.person_id = p.id \
              AND s.status IN ('graded', 'rejected', 'build_failed')) AS best_score \
         FROM people p \
         LEFT JOIN submissions l ON l.id = \
           (SELECT MAX(s.id) FROM submissions s WHERE s.person_id = p.id) \
         WHERE p.role = 'student' ORDER BY p.id",
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(serde_json::json!({ "students": lines })))
}
