//! The instructors' gradebook page: every student by category (of their best submission), best
//! and latest total, submission counts; filtered by name on the server (`?q=`), sorted and
//! filtered in place by the script.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{page, status_label, Layout, LoggedIn, PageError};
use crate::engine::report::CategoryScore;
use crate::server::error::AppError;
use crate::server::AppState;

/// The gradebook page's route.
pub fn router() -> Router<AppState> {
    Router::new().route("/gradebook", get(gradebook))
}

/// One student's row as read: the best submission (highest score, then newest) gives the
/// categories.
#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    submissions: i64,
    latest_id: Option<i64>,
    latest_status: Option<String>,
    latest_score: Option<i64>,
    best_id: Option<i64>,
    best_score: Option<i64>,
    max_score: Option<i64>,
    categories: Option<String>,
}

/// A cell with a number to sort by.
pub struct Cell {
    /// As shown (`13/13`, or `–`).
    pub shown: String,
    /// Sort key (-1 when empty, so that empty cells sort below zero).
    pub key: i64,
}

impl Cell {
    fn of(score: Option<i64>, max: Option<i64>) -> Cell {
        match score {
            Some(s) => Cell {
                shown: format!("{s}/{}", max.unwrap_or(0)),
                key: s,
            },
            None => Cell {
                shown: "–".into(),
                key: -1,
            },
        }
    }
}

/// One student's line on the page.
pub struct Line {
    /// Roster id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Per category, in the page's column order.
    pub categories: Vec<Cell>,
    /// Best total and its submission.
    pub best: Cell,
    /// The best submission.
    pub best_id: Option<i64>,
    /// Latest total.
    pub latest: Cell,
    /// The latest submission.
    pub latest_id: Option<i64>,
    /// Submission count.
    pub submissions: i64,
}

#[derive(Template)]
#[template(path = "gradebook.html")]
struct GradebookPage {
    layout: Layout,
    q: String,
    /// The categories' names in words (`missed wake`), so that headings can wrap.
    headings: Vec<String>,
    lines: Vec<Line>,
    total_submissions: i64,
}

/// `?q=` filters by name or id.
#[derive(Debug, Deserialize)]
struct Filter {
    #[serde(default)]
    q: String,
}

/// `GET /gradebook`: instructors only (students get 403).
async fn gradebook(
    State(state): State<AppState>,
    session: LoggedIn,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    if !session.0.caller.is_instructor() {
        return Err(AppError::Forbidden.into());
    }
    let q = filter.q.trim().to_string();
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.id, p.name, \
           (SELECT COUNT(*) FROM submissions s WHERE s.person_id = p.id) AS submissions, \
           l.id AS latest_id, l.status AS latest_status, \
           CASE WHEN l.status IN ('graded', 'rejected', 'build_failed') THEN l.score END \
             AS latest_score, \
           b.id AS best_id, b.score AS best_score, COALESCE(b.max_score, l.max_score) AS max_score, \
           json_extract(b.report, '$.categories') AS categories \
         FROM people p \
         LEFT JOIN submissions l ON l.id = \
           (SELECT MAX(s.id) FROM submissions s WHERE s.person_id = p.id) \
         LEFT JOIN submissions b ON b.id = \
           (SELECT s.id FROM submissions s WHERE s.person_id = p.id \
              AND s.status IN ('graded', 'rejected', 'build_failed') \
            ORDER BY s.score DESC, s.id DESC LIMIT 1) \
         WHERE p.role = 'student' AND (? = '' OR instr(lower(p.name), lower(?)) > 0 \
           OR instr(lower(p.id), lower(?)) > 0) \
         ORDER BY p.name, p.id",
    )
    .bind(&q)
    .bind(&q)
    .bind(&q)
    .fetch_all(&state.db)
    .await?;
    let parsed: Vec<BTreeMap<String, CategoryScore>> = rows
        .iter()
        .map(|r| {
            r.categories
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default()
        })
        .collect();
    let columns: Vec<String> = parsed
        .iter()
        .flat_map(|c| c.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let lines = rows
        .into_iter()
        .zip(parsed)
        .map(|(r, cats)| Line {
            categories: columns
                .iter()
                .map(|c| match cats.get(c) {
                    Some(s) => Cell::of(Some(s.score.into()), Some(s.max_score.into())),
                    None => Cell::of(None, None),
                })
                .collect(),
            best: Cell::of(r.best_score, r.max_score),
            // Without a score yet (queued, grading, failed), the latest says what it is.
            latest: match (r.latest_score, r.latest_status.as_deref()) {
                (None, Some(status)) => Cell {
                    shown: status_label(status).into(),
                    key: -1,
                },
                _ => Cell::of(r.latest_score, r.max_score),
            },
            id: r.id,
            name: r.name,
            best_id: r.best_id,
            latest_id: r.latest_id,
            submissions: r.submissions,
        })
        .collect::<Vec<_>>();
    page(
        StatusCode::OK,
        &GradebookPage {
            layout: Layout::of(&state, &session.0).await?,
            total_submissions: lines.iter().map(|l| l.submissions).sum(),
            q,
            headings: columns.iter().map(|c| c.replace('_', " ")).collect(),
            lines,
        },
    )
}
