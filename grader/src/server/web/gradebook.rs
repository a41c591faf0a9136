//! The instructors' gradebook page: the server's gradebook (the same rows as its CSV) with every
//! student's counted submission (best or latest, per the policy), its late mark and points per
//! category, and submission counts; filtered by name on the server (`?q=`), sorted and filtered in
//! place by the script.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{late_mark, page, Layout, LoggedIn, PageError, Stamp};
use crate::server::gradebook::{built, Line as BookLine};
use crate::server::AppState;

/// The gradebook page's route.
pub fn router() -> Router<AppState> {
    Router::new().route("/gradebook", get(gradebook))
}

/// A cell with a number to sort by.
pub struct Cell {
    /// As shown (`13`, `87/100`, or `–`).
    pub shown: String,
    /// Sort key (-1 when empty, so that empty cells sort below zero).
    pub key: i64,
}

impl Cell {
    fn of(value: Option<i64>, shown: impl FnOnce(i64) -> String) -> Cell {
        match value {
            Some(v) => Cell {
                shown: shown(v),
                key: v,
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
    /// The counted submission, if one was scored.
    pub counted_id: Option<i64>,
    /// Its score after the late penalty.
    pub score: Cell,
    /// Its late mark, with the score before the penalty.
    pub late: Option<String>,
    /// Submissions in all, and how many came late.
    pub submissions: i64,
    /// Of which late.
    pub late_submissions: i64,
    /// Per category, in the page's column order.
    pub categories: Vec<Cell>,
}

impl Line {
    fn of(line: &BookLine, columns: &[String]) -> Line {
        let c = line.counted.as_ref();
        Line {
            id: line.id.clone(),
            name: line.name.clone(),
            counted_id: c.map(|c| c.id),
            score: Cell::of(c.and_then(|c| c.final_score), |s| {
                format!("{s}/{}", c.and_then(|c| c.max_score).unwrap_or(0))
            }),
            late: c.and_then(|c| {
                late_mark(c.late_ms, c.penalty_pct)
                    .map(|mark| format!("{mark} (from {})", c.score.unwrap_or(0)))
            }),
            submissions: line.submissions,
            late_submissions: line.late_submissions,
            categories: columns
                .iter()
                .map(|name| {
                    Cell::of(c.and_then(|c| c.categories.get(name).copied()), |p| {
                        p.to_string()
                    })
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "gradebook.html")]
struct GradebookPage {
    layout: Layout,
    csrf: String,
    q: String,
    /// `best` or `latest`.
    policy: &'static str,
    /// The course's deadline, as shown.
    deadline: Option<Stamp>,
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
    let built = built(&state, &session.0.caller).await?;
    let book = &built.book;
    let q = filter.q.trim().to_string();
    let wanted = q.to_lowercase();
    let lines = book
        .students
        .iter()
        .filter(|l| {
            wanted.is_empty()
                || l.name.to_lowercase().contains(&wanted)
                || l.id.to_lowercase().contains(&wanted)
        })
        .map(|l| Line::of(l, &book.categories))
        .collect::<Vec<_>>();
    page(
        StatusCode::OK,
        &GradebookPage {
            layout: Layout::of(&state, &session.0).await?,
            csrf: session.0.csrf.clone(),
            total_submissions: lines.iter().map(|l| l.submissions).sum(),
            q,
            policy: book.policy,
            deadline: state.policy.deadline.map(Stamp::of),
            headings: book
                .categories
                .iter()
                .map(|c| c.replace('_', " "))
                .collect(),
            lines,
        },
    )
}
