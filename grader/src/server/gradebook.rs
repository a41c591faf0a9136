//! The instructors' gradebook: every student on the roster with their counts and the submission
//! that counts (best or latest per the score policy) with its late mark and points per category,
//! as JSON (`GET /api/gradebook`) and CSV (`GET /api/gradebook.csv`, the same rows). Students get
//! 403. The last one built is kept until something it shows may have changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::auth::Caller;
use super::error::AppError;
use super::policy::ScorePolicy;
use super::time::format_ms;
use super::AppState;

/// The gradebook's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/gradebook", get(gradebook))
        .route("/api/gradebook.csv", get(csv))
}

/// What a built gradebook depends on: the server's own writes (counted) and, for writes by other
/// processes (`grader roster`), the roster, the extensions and the last submission.
type Key = (u64, i64, Option<i64>, i64, Option<i64>, Option<i64>);

/// The last gradebook built, with its JSON.
#[derive(Debug, Default)]
pub struct Cache {
    /// Bumped by every write of the server that the gradebook may show.
    changes: AtomicU64,
    last: Mutex<Option<(Key, Arc<Built>)>>,
    /// Held while one request builds: the others wait for its result instead of building too.
    building: tokio::sync::Mutex<()>,
}

/// A gradebook built, with its JSON.
#[derive(Debug)]
pub struct Built {
    /// The gradebook (the pages show it).
    pub book: Book,
    json: Bytes,
}

impl Cache {
    /// Marks the gradebook out of date (an upload, a stored grading, an extension).
    pub fn invalidate(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

/// One student's line, as read.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    email: String,
    submissions: i64,
    late_submissions: i64,
    extension: Option<i64>,
    chosen: Option<i64>,
    status: Option<String>,
    score: Option<i64>,
    final_score: Option<i64>,
    max_score: Option<i64>,
    late_ms: Option<i64>,
    penalty_pct: Option<i64>,
    categories: Option<String>,
}

/// The submission that counts for a student.
#[derive(Debug, Serialize)]
pub struct Counted {
    /// The submission's id.
    pub id: i64,
    /// Its status.
    pub status: String,
    /// Points before the late penalty.
    pub score: Option<i64>,
    /// The late penalty, in percent.
    pub penalty_pct: i64,
    /// Points after it: what counts.
    pub final_score: Option<i64>,
    /// Points possible.
    pub max_score: Option<i64>,
    /// Whether it came after the deadline.
    pub late: bool,
    /// How late (ms).
    pub late_ms: Option<i64>,
    /// Points per rubric category (before the penalty).
    pub categories: BTreeMap<String, i64>,
}

/// One student's line.
#[derive(Debug, Serialize)]
pub struct Line {
    /// Roster id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Submissions in all.
    pub submissions: i64,
    /// Of which late.
    pub late_submissions: i64,
    /// Their own deadline, when an extension was granted.
    pub extension: Option<String>,
    /// The submission that counts, if one was scored.
    pub counted: Option<Counted>,
}

/// The whole gradebook.
#[derive(Debug, Serialize)]
pub struct Book {
    /// Which submission counts: `best` or `latest`.
    pub policy: &'static str,
    /// The course's deadline (RFC 3339).
    pub deadline: Option<String>,
    /// Every category that appears in a counted submission, sorted: the CSV's last columns.
    pub categories: Vec<String>,
    /// One line per student, by id.
    pub students: Vec<Line>,
}

/// The counted submission per student, by policy: `?1` is 1 for best, 0 for latest. Scored means a
/// report was stored (not an internal error, not still waiting).
const QUERY: &str = "\
WITH ranked AS (
  SELECT s.id, s.person_id, s.status, s.score, s.final_score, s.max_score, s.late_ms,
         s.penalty_pct, s.categories,
         ROW_NUMBER() OVER (PARTITION BY s.person_id ORDER BY
           CASE WHEN $1 THEN s.final_score END DESC, s.id * CASE WHEN $1 THEN 1 ELSE -1 END) AS rn
  FROM submissions s
  WHERE s.final_score IS NOT NULL AND s.status IN ('graded', 'rejected', 'build_failed')
), counts AS (
  SELECT person_id, COUNT(*) AS n, COUNT(late_ms) AS late_n FROM submissions GROUP BY person_id
)
SELECT p.id, p.name, p.email, COALESCE(c.n, 0) AS submissions,
       COALESCE(c.late_n, 0) AS late_submissions, e.deadline AS extension,
       r.id AS chosen, r.status, r.score, r.final_score, r.max_score, r.late_ms, r.penalty_pct,
       r.categories
FROM people p
LEFT JOIN counts c ON c.person_id = p.id
LEFT JOIN ranked r ON r.person_id = p.id AND r.rn = 1
LEFT JOIN extensions e ON e.person_id = p.id
WHERE p.role = 'student'
ORDER BY p.id";

/// The gradebook, built again only when its key changed (403 for students).
pub async fn built(state: &AppState, caller: &Caller) -> Result<Arc<Built>, AppError> {
    if !caller.is_instructor() {
        return Err(AppError::Forbidden);
    }
    let cache = &state.gradebook;
    // Read before the data: a write during the build leaves the key behind, not the data.
    let changes = cache.changes.load(Ordering::SeqCst);
    let (people, updated, extensions, extended, last): (
        i64,
        Option<i64>,
        i64,
        Option<i64>,
        Option<i64>,
    ) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM people), (SELECT MAX(updated_at) FROM people), \
             (SELECT COUNT(*) FROM extensions), (SELECT MAX(created_at) FROM extensions), \
             (SELECT MAX(id) FROM submissions)",
    )
    .fetch_one(&state.db)
    .await?;
    let key = (changes, people, updated, extensions, extended, last);
    let lock = || cache.last.lock().unwrap_or_else(|p| p.into_inner());
    let kept = || {
        lock()
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, built)| Arc::clone(built))
    };
    if let Some(built) = kept() {
        return Ok(built);
    }
    let _building = cache.building.lock().await;
    if let Some(built) = kept() {
        return Ok(built);
    }
    let book = book(state).await?;
    let json = Bytes::from(serde_json::to_vec(&book).expect("gradebooks serialise"));
    let built = Arc::new(Built { book, json });
    *lock() = Some((key, Arc::clone(&built)));
    Ok(built)
}

async fn book(state: &AppState) -> Result<Book, AppError> {
    let policy = state.policy.score_policy;
    let rows: Vec<Row> = sqlx::query_as(QUERY)
        .bind(policy == ScorePolicy::Best)
        .fetch_all(&state.db)
        .await?;
    let mut names = BTreeSet::new();
    let mut students = Vec::with_capacity(rows.len());
    for r in rows {
        let counted = match (r.chosen, r.status) {
            (Some(id), Some(status)) => {
                let categories: BTreeMap<String, i64> = match r.categories.as_deref() {
                    Some(text) => serde_json::from_str(text).map_err(|e| {
                        AppError::Internal(format!("categories of submission {id}: {e}"))
                    })?,
                    None => BTreeMap::new(),
                };
                names.extend(categories.keys().cloned());
                Some(Counted {
                    id,
                    status,
                    score: r.score,
                    penalty_pct: r.penalty_pct.unwrap_or(0),
                    final_score: r.final_score,
                    max_score: r.max_score,
                    late: r.late_ms.is_some(),
                    late_ms: r.late_ms,
                    categories,
                })
            }
            _ => None,
        };
        students.push(Line {
            id: r.id,
            name: r.name,
            email: r.email,
            submissions: r.submissions,
            late_submissions: r.late_submissions,
            extension: r.extension.map(format_ms),
            counted,
        });
    }
    Ok(Book {
        policy: policy.as_str(),
        deadline: state.policy.deadline.map(format_ms),
        categories: names.into_iter().collect(),
        students,
    })
}

async fn gradebook(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    let built = built(&state, &caller).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        built.json.clone(),
    )
        .into_response())
}

/// The CSV's fixed columns, before one per category.
const COLUMNS: [&str; 14] = [
    "id",
    "name",
    "email",
    "submissions",
    "late_submissions",
    "extension",
    "submission_id",
    "status",
    "score",
    "penalty_pct",
    "final_score",
    "max_score",
    "late",
    "late_ms",
];

/// `GET /api/gradebook.csv`: the gradebook's rows, one per student; empty cells where the JSON
/// has `null`.
async fn csv(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    let built = built(&state, &caller).await?;
    let book = &built.book;
    let cell = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(book.categories.iter().cloned());
    let write_error = |e: csv::Error| AppError::Internal(format!("gradebook CSV: {e}"));
    out.write_record(header).map_err(write_error)?;
    for line in &book.students {
        let c = line.counted.as_ref();
        let mut record = vec![
            line.id.clone(),
            line.name.clone(),
            line.email.clone(),
            line.submissions.to_string(),
            line.late_submissions.to_string(),
            line.extension.clone().unwrap_or_default(),
            cell(c.map(|c| c.id)),
            c.map(|c| c.status.clone()).unwrap_or_default(),
            cell(c.and_then(|c| c.score)),
            cell(c.map(|c| c.penalty_pct)),
            cell(c.and_then(|c| c.final_score)),
            cell(c.and_then(|c| c.max_score)),
            c.map(|c| c.late.to_string()).unwrap_or_default(),
            cell(c.and_then(|c| c.late_ms)),
        ];
        record.extend(
            book.categories
                .iter()
                .map(|name| cell(c.and_then(|c| c.categories.get(name).copied()))),
        );
        out.write_record(&record).map_err(write_error)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| AppError::Internal(format!("gradebook CSV: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"gradebook.csv\"",
            ),
        ],
        bytes,
    )
        .into_response())
}
